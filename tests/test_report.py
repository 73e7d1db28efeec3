"""The HTML report of a trained student: self-contained, and it renders in a real browser.

The student is trained here (a few direct-training steps on real SST-2 sentences); the page is
opened in headless Chromium (Debian's package, driven by Playwright), which must log no console
error and decode every embedded image. Without a Chromium on the machine that check skips, saying
so; CI installs one."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import TINY_SHAPE, run_cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser_check(path) -> dict:
    """Open ``path`` in headless Chromium: console errors, page errors, and every image's state."""
    exe = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if exe is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); the page was not opened in a browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page()
        problems = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: problems.append(f"network request: {r.url}")
                if not r.url.startswith(("file:", "data:")) else None)
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.alt, i.complete, i.naturalWidth])")
        headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        browser.close()
    return {"problems": problems, "images": images, "headings": headings}


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

    seen = browser_check(page)
    assert seen["problems"] == []
    assert seen["headings"] == ["Training", "Dev confusion matrix", "Energy against the teacher, firing rates",
                                "Spike rasters of dev sentences"]
    # curves, confusion, two energy plots and one raster per layer: all decoded by the browser
    assert len(seen["images"]) >= 5
    assert all(complete and width > 0 for _, complete, width in seen["images"]), seen["images"]


def test_the_browser_check_catches_a_broken_image(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="x" src="data:image/png;base64,AAAA"></body></html>')
    seen = browser_check(page)
    assert seen["images"] == [["x", True, 0]]  # decoded to nothing: the check above would fail on it
