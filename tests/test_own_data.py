"""Your own data, end to end: `spikebert run --train-file` on a CSV with named labels, written from
real SST-5 lines, gives a student with those names, a model card, a report, a test figure, and the
same training as `--task sst5` on the same lines; bad files end in one-line errors before training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import SHARED, assert_one_error_line, run_cli, shared_data_dir
from test_card import FakeHub

SST5 = shared_data_dir() / "sst5"
CORPUS = SHARED / "corpora" / "en" / "nlp-corpus.txt"
NAMES = ("very negative", "negative", "neutral", "positive", "very positive")
# the first lines of each release file: the tiny preset trains on 96, dev and test are kept small
TRAIN, DEV, TEST = ("train.txt", 0, 120), ("dev.txt", 0, 32), ("dev.txt", 32, 56)


def sst5_lines(name: str, start: int, stop: int) -> list[str]:
    """Raw lines of the release (``<label> <sentence>``, UTF-8; split on \\n only)."""
    return (SST5 / name).read_text(encoding="utf-8").split("\n")[start:stop]


def write_csv(path: Path, lines: list[str]) -> Path:
    """The lines as a CSV a user would make: a header, the sentence, the label's name."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence", "sentiment"])
        for line in lines:
            label, _, text = line.strip().partition(" ")
            w.writerow([text.strip(), NAMES[int(label)]])
    return path


def run_args(work: Path, *extra) -> list:
    return ["run", "--preset", "tiny", "--workdir", work, "--corpus", CORPUS, *extra]


OWN = ["--text-column", "sentence", "--label-column", "sentiment", "--labels", ",".join(NAMES)]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("own")
    return {"train": write_csv(root / "reviews.csv", sst5_lines(*TRAIN)),
            "dev": write_csv(root / "reviews-dev.csv", sst5_lines(*DEV)),
            "test": write_csv(root / "reviews-test.csv", sst5_lines(*TEST))}


@pytest.fixture(scope="module")
def own_run(files, tmp_path_factory):
    """The run on the CSV files, and its report."""
    work = tmp_path_factory.mktemp("own-runs")
    code = run_cli(run_args(work, "--train-file", files["train"], "--dev-file", files["dev"], "--test-file",
                            files["test"], *OWN))
    assert code == 0
    return work, json.loads((work / "reviews" / "report.json").read_text())


def test_the_run_reports_dev_test_and_energy_figures(own_run, files):
    work, report = own_run
    snn = json.loads((work / "reviews" / "snn" / "metrics.json").read_text())
    assert report["task"] == "reviews" and report["snn_dev_accuracy"] == snn["dev_accuracy"]
    assert snn["dev_examples"] == 32 and 0 <= report["teacher_dev_accuracy"] <= 1
    assert report["data"]["labels"] == list(NAMES) and report["data"]["dev_file"] == str(files["dev"])
    assert report["language"] == "en" and report["data"]["language_from"].startswith("detected")
    test = report["test"]  # evaluated once, at the end: in the report, never in the selection
    assert test["file"] == str(files["test"]) and test["n"] == 24
    assert 0 <= test["snn"]["accuracy"] <= 1 and 0 <= test["teacher"]["macro_f1"] <= 1
    assert 0 < report["energy"]["energy_ratio"] < 1
    assert Path(report["html"]).is_file()


def test_label_names_reach_the_model_predict_and_transformers(own_run, capsys):
    from transformers import AutoModelForSequenceClassification, pipeline

    import spikebert  # noqa: F401  (registers SpikeBERT with transformers)
    from spikebert import Classifier, SpikeBertForSequenceClassification

    folder = own_run[0] / "reviews" / "snn"
    config = json.loads((folder / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(5)] == list(NAMES)
    texts = ["a gorgeous , witty film", "dull and lifeless"]
    assert run_cli(["predict", "--model", folder, *texts, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labels"] == list(NAMES) and all(p["label"] in NAMES for p in out["predictions"])
    assert isinstance(AutoModelForSequenceClassification.from_pretrained(folder), SpikeBertForSequenceClassification)
    ours = Classifier.from_pretrained(folder)(texts)
    theirs = pipeline("text-classification", model=str(folder))(texts)
    assert [t["label"] for t in theirs] == [o["label"] for o in ours] == [p["label"] for p in out["predictions"]]
    assert [t["score"] for t in theirs] == pytest.approx([o["score"] for o in ours], abs=1e-6)


def test_the_student_and_teacher_have_model_cards(own_run):
    from huggingface_hub import ModelCard

    work, report = own_run
    card = ModelCard.load(work / "reviews" / "snn" / "README.md")
    assert card.data.library_name == "spikebert" and card.data.language == ["en"]
    assert card.data.datasets is None  # a user's file is no Hub dataset
    assert f"Dev accuracy **{report['snn_dev_accuracy'] * 100:.2f} %**" in card.text
    assert f"**{report['energy']['energy_ratio'] * 100:.1f} %**" in card.text
    assert "`very negative`, `negative`, `neutral`, `positive`, `very positive`" in card.text
    teacher = ModelCard.load(work / "reviews" / "teacher" / "README.md")
    assert teacher.data.library_name == "transformers" and "spikebert-teacher" in teacher.data.tags


def test_own_data_and_task_runs_train_the_same(own_run, files, tmp_path_factory):
    """`--task sst5` on a data folder holding the same lines trains exactly as the CSV run did:
    same classes in the same order, same teacher, same (reused) stage 1, same student."""
    work, own = own_run
    data = tmp_path_factory.mktemp("sst5-data")
    (data / "sst5").mkdir()
    for name, part in (("train.txt", TRAIN), ("dev.txt", DEV)):
        (data / "sst5" / name).write_text("\n".join(sst5_lines(*part)) + "\n", encoding="utf-8")
    assert run_cli(run_args(work, "--task", "sst5", "--data-dir", data, "--no-energy", "--no-html")) == 0
    task = json.loads((work / "sst5" / "report.json").read_text())
    assert task["stages"]["stage1"]["reused"] and not task["stages"]["stage2"]["reused"]
    assert task["teacher_dev_accuracy"] == own["teacher_dev_accuracy"]
    assert task["snn_dev_accuracy"] == own["snn_dev_accuracy"]
    own_history, task_history = (json.loads((work / name / "snn" / "metrics.json").read_text())["history"]
                                 for name in ("reviews", "sst5"))
    assert own_history == task_history


def test_push_and_report_of_the_own_run(own_run, files, tmp_path, monkeypatch, capsys):
    """`run --push-to-hub` (every stage reused) and `spikebert push` upload the student with its
    card and without its training state; `report` finds the run's own dev data by itself."""
    import huggingface_hub

    hubs = []
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: hubs.append(FakeHub()) or hubs[-1])
    work, _ = own_run
    assert run_cli(run_args(work, "--train-file", files["train"], "--dev-file", files["dev"], *OWN, "--no-energy",
                            "--no-html", "--push-to-hub", "someone/reviews-snn")) == 0
    report = json.loads((work / "reviews" / "report.json").read_text())
    assert all(s["reused"] for s in report["stages"].values())
    assert report["pushed"] == "https://huggingface.co/someone/reviews-snn"
    folder = work / "reviews" / "snn"
    assert run_cli(["push", "--model", folder, "--repo", "someone/other"]) == 0
    for hub in hubs:
        assert {"README.md", "config.json", "model.safetensors"} <= set(hub.uploaded)
        assert not any(f.startswith("checkpoints") for f in hub.uploaded)
    assert [hub.calls[0] for hub in hubs] == [("create_repo", "someone/reviews-snn"), ("create_repo", "someone/other")]
    capsys.readouterr()
    page = tmp_path / "page.html"
    assert run_cli(["report", "--model", folder, "--output", page, "--rasters", "1"]) == 0
    assert f"on {files['dev']} (32 dev examples)" in capsys.readouterr().out and page.is_file()


# ---------------------------------------------------------------------------------------------
# Before any training: the dev cut is said, and bad files are one line each


@pytest.fixture()
def no_teacher(tmp_path) -> Path:
    """A teacher folder that is not one: the run stops right after reading the data."""
    (tmp_path / "not-a-teacher").mkdir()
    return tmp_path / "not-a-teacher"


def test_without_dev_file_a_stratified_cut_is_made_and_said(files, no_teacher, tmp_path, capsys):
    assert run_cli(run_args(tmp_path / "w", "--train-file", files["train"], *OWN, "--teacher", no_teacher)) == 2
    out = capsys.readouterr().out
    # 120 lines: 10 % of each class, rounded (at least one), by a fixed seed: 3 + 3 + 2 + 2 + 1
    assert "dev: a seeded, stratified 10 % cut of" in out and "(11 examples, seed 20230829; no --dev-file given)" in out
    record = json.loads((tmp_path / "w" / "reviews" / "data.json").read_text())
    assert record["dev_cut"] == {"fraction": 0.1, "seed": 20230829, "stratified": True}


def test_a_folder_made_from_other_data_is_refused(files, no_teacher, tmp_path, capsys):
    work = tmp_path / "w"
    assert run_cli(run_args(work, "--train-file", files["train"], *OWN, "--teacher", no_teacher)) == 2
    other = write_csv(tmp_path / "reviews.csv", sst5_lines("train.txt", 200, 320))
    capsys.readouterr()
    assert run_cli(run_args(work, "--train-file", other, *OWN, "--teacher", no_teacher)) == 2
    assert_one_error_line(capsys.readouterr().err, str(work / "reviews"), "other data", "--name")


BAD = {
    "a dev label training never saw": ("text,label\na,pos\nb,pos\nc,neg\nd,neg\n", "text,label\ne,pos\nf,mixed\n",
                                       ["dev.csv:3", "'mixed'", "never occurs in the training file"]),
    "a class with one example": ("text,label\na,pos\nb,pos\nc,neg\nd,neg\ne,LOC\n", None,
                                 ["train.csv", "'LOC'", "one example", "at least 2"]),
    "a missing column": ("body,label\na,pos\n", None, ["train.csv:1", "no column 'text'"]),
    "an empty file": ("", None, ["train.csv", "empty"]),
    "one class": ("text,label\na,pos\nb,pos\n", None, ["train.csv", "only one class"]),
    "a numbered class with no example": ("text,label\na,1\nb,1\nc,2\nd,2\n", None,
                                         ["train.csv", "class '0' has no example", "number the classes from 0"]),
    "a task's name": ("text,label\na,pos\nb,pos\nc,neg\nd,neg\n", None, ["'sst2'", "--name"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_own_data_is_one_line(case, tmp_path, capsys):
    train, dev, needles = BAD[case]
    path = tmp_path / ("sst2.csv" if case == "a task's name" else "train.csv")
    path.write_text(train, encoding="utf-8")
    args = ["--train-file", path]
    if dev is not None:
        (tmp_path / "dev.csv").write_text(dev, encoding="utf-8")
        args += ["--dev-file", tmp_path / "dev.csv"]
    assert run_cli(run_args(tmp_path / "w", *args)) == 2
    assert_one_error_line(capsys.readouterr().err, *needles)


@pytest.mark.parametrize("args, needles", [
    (["--task", "sst2", "--dev-file", "d.csv"], ["--dev-file", "only with --train-file"]),
    (["--task", "sst2", "--train-file", "t.csv"], ["not both"]),
    ([], ["--task", "--train-file"]),
    (["--train-file", "t.csv", "--labels", "a,a"], ["--labels", "distinct"]),
])
def test_run_flags_that_do_not_go_together(args, needles, tmp_path, capsys):
    assert run_cli(run_args(tmp_path / "w", *args)) == 2
    assert_one_error_line(capsys.readouterr().err, *needles)


def test_the_language_is_given_or_detected(tmp_path, capsys):
    from spikebert.data.tasks import detect_language, user_splits

    assert detect_language(["这部电影很好看", "服务太差了 bad"])[0] == "zh"
    assert detect_language(["a fine film", "an über-dull café"])[0] == "en"
    path = tmp_path / "zh.jsonl"
    pairs = (("很好", "好"), ("不错", "好"), ("太差", "差"), ("难吃", "差"))
    rows = [{"text": t, "label": lab} for t, lab in pairs]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert user_splits(path).train.language == "zh"
    assert user_splits(path, language="en").record["language_from"] == "given"
    assert run_cli(run_args(tmp_path / "w", "--train-file", path, "--language", "fr")) == 2
    assert_one_error_line(capsys.readouterr().err, "--language", "en, zh", "'fr'")
