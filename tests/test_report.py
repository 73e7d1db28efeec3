"""The HTML report of a trained student: self-contained, and it renders in a real browser.

The student is trained here (a few direct-training steps on real SST-2 sentences); the page is
opened in headless Chromium (Debian's package, driven by Playwright), which must log no console
error and decode every embedded image. Without a Chromium on the machine that check skips, saying
so; CI installs one."""

from __future__ import annotations

import json
import re

import pytest

from conftest import SHARED, TINY_SHAPE, assert_one_error_line, browser_check, run_cli

@pytest.fixture(scope="module")
def trained(mini_sst2_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "direct"
    assert run_cli(["train-direct", "--task", "sst2", "--data-dir", mini_sst2_dir, "--output", out, *TINY_SHAPE,
                    "--max-steps", "4", "--batch-size", "16", "--max-length", "48"]) == 0
    return out


def test_the_report_is_one_self_contained_page_that_renders(trained, mini_sst2_dir, tmp_path):
    from spikebert.analysis.energy import measure
    from spikebert.analysis.report import write_report
    from spikebert.data.batching import encode_examples
    from spikebert.data.tasks import load_data
    from spikebert.folders import load_classifier
    from spikebert.training.metrics import evaluate_dataset

    model, tok = load_classifier(trained)
    dev = load_data("sst2", "dev", mini_sst2_dir)
    metrics = evaluate_dataset(model, encode_examples(tok, dev.examples, 48), dev.labels)
    texts = [ex.text for ex in dev.examples[:8]]
    energy = measure(model, tok, texts, [ex.label for ex in dev.examples[:8]], max_length=48)
    page = write_report(tmp_path / "report.html", model, tok, title="SpikeBERT on SST-2", dev_metrics=metrics,
                        energy=energy, stage_dirs={"direct training": trained}, raster_texts=texts[:1])
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # nothing to fetch: every figure is inline
    assert f"{metrics['accuracy'] * 100:.2f} %" in text
    outside_rows = re.sub(r'<div class="row"[^>]*>.*?</div>', "", text, flags=re.S)
    assert text.count("<img") >= 5 and "<img" not in outside_rows  # every figure is in a row of equal cells

    seen = browser_check(page)
    assert seen["problems"] == []
    assert seen["headings"] == ["Training", "Dev confusion matrix", "Energy against the teacher, firing rates",
                                "Spike rasters of dev sentences"]
    # curves, confusion, two energy plots and one raster per layer: all decoded by the browser
    assert len(seen["images"]) >= 5
    assert all(complete and width > 0 for _, complete, width in seen["images"]), seen["images"]
    # every figure sits in a row, and a row's plots are shown one size, whatever size each was drawn at
    assert sum(len(r) for r in seen["rows"]) == len(seen["images"])
    assert all(len(set(r)) == 1 for r in seen["rows"]), seen["rows"]


def test_the_browser_check_catches_a_broken_image(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="x" src="data:image/png;base64,AAAA"></body></html>')
    seen = browser_check(page)
    assert seen["images"] == [["x", True, 0]]  # decoded to nothing: the check above would fail on it


CORPUS = SHARED / "corpora" / "en" / "nlp-corpus.txt"
HEADINGS = ["Training", "Dev confusion matrix", "Energy against the teacher, firing rates",
            "Spike rasters of dev sentences"]


def assert_renders(page, min_images: int) -> str:
    """The page is self-contained and Chromium renders it: no error, every image decoded."""
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)
    seen = browser_check(page)
    assert seen["problems"] == [] and seen["headings"] == HEADINGS
    assert len(seen["images"]) >= min_images
    assert all(complete and width > 0 for _, complete, width in seen["images"]), seen["images"]
    return text


def test_run_and_report_write_pages_that_render(mini_sst2_dir, tmp_path, capsys):
    """`run` ends with its page; `report --model` writes the same kind of page for the student,
    with every stage's curves (found through metrics.json) and the run's energy report."""
    work = tmp_path / "runs"
    assert run_cli(["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work,
                    "--corpus", CORPUS]) == 0
    report = json.loads((work / "sst2" / "report.json").read_text())
    run_page = work / "sst2" / "report.html"
    assert report["html"] == str(run_page)
    page = tmp_path / "page.html"
    assert run_cli(["report", "--model", work / "sst2" / "snn", "--data-dir", mini_sst2_dir, "--output", page]) == 0
    assert str(page) in capsys.readouterr().out
    energy = json.loads((work / "sst2" / "energy" / "energy.json").read_text())
    for p in (run_page, page):
        # curves of three stages, the confusion matrix, two energy plots, a raster of each of 2 sentences
        text = assert_renders(p, min_images=8)
        assert all(f"{name}: loss terms" in text for name in
                   ("teacher fine-tuning", "stage 1 (pre-distillation)", "stage 2 (task distillation)"))
        assert f"{energy['energy_ratio'] * 100:.1f} %" in text
        assert f"{report['teacher_dev_accuracy'] * 100:.2f} %" in text


def test_report_measures_the_energy_when_none_is_found(trained, mini_sst2_dir, tmp_path, capsys):
    """A model with no energy report beside it (direct training: no teacher either) is measured
    on --energy-texts dev texts of its recorded task."""
    page = tmp_path / "direct.html"
    assert run_cli(["report", "--model", trained, "--data-dir", mini_sst2_dir, "--energy-texts", "8",
                    "--rasters", "1", "--output", page]) == 0
    text = assert_renders(page, min_images=5)
    assert "direct training: loss terms" in text and "energy ratio" in text


def test_report_refuses_what_it_cannot_show(tiny_teacher, trained, tmp_path, capsys):
    assert run_cli(["report", "--model", tiny_teacher, "--task", "sst2", "--output", tmp_path / "x.html"]) == 2
    assert_one_error_line(capsys.readouterr().err, str(tiny_teacher), "no spiking neurons")
    dev = tmp_path / "dev.csv"
    dev.write_text("text,label\nfine,positive\nbad,awful\n", encoding="utf-8")
    assert run_cli(["report", "--model", trained, "--dev-file", dev, "--output", tmp_path / "y.html"]) == 2
    assert_one_error_line(capsys.readouterr().err, f"{dev}:3", "'awful'", "never occurs in the model")
