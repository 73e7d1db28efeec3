"""Predictions (Python API and ``spikebert predict``) and spike rasters (``spikebert inspect``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
from spikebert.errors import SpikeBertError
from spikebert.predict import Classifier, predict, read_texts

TEXTS = ["a gorgeous , witty , seductive movie .", "dull .",
         "the film is strictly routine , but the performances are as good as they get .", "ok"]
LABELS = {0: "negative", 1: "positive"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def snn_dir(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    cfg = SpikeBertConfig(vocab_size=30522, num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                          num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    path = tmp_path_factory.mktemp("snn")
    SpikeBertForSequenceClassification(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, num_labels=3, id2label={0: "a", 1: "b", 2: "c"},
                     label2id={"a": 0, "b": 1, "c": 2})
    path = tmp_path_factory.mktemp("bert")
    BertForSequenceClassification(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("which", ["snn_dir", "bert_dir"])
def test_predict_labels_scores_and_order(which, request):
    folder = request.getfixturevalue(which)
    clf = Classifier.from_pretrained(folder, batch_size=2)
    names = clf.labels
    assert names == (["negative", "positive"] if which == "snn_dir" else ["a", "b", "c"])
    results = clf.predict(TEXTS)
    assert len(results) == len(TEXTS)
    for r in results:
        assert list(r["probabilities"]) == names
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["score"] == max(r["probabilities"].values())
        assert r["probabilities"][r["label"]] == r["score"]
    # batched with padding (sorted by length) = one text at a time, in the caller's order
    for text, r in zip(TEXTS, results):
        alone = clf.predict([text])[0]
        assert alone["label"] == r["label"]
        assert list(alone["probabilities"].values()) == pytest.approx(list(r["probabilities"].values()), abs=1e-5)
    assert [r["label"] for r in predict(folder, TEXTS[:2])] == [r["label"] for r in results[:2]]


def test_predict_rejects_empty_text(snn_dir):
    clf = Classifier.from_pretrained(snn_dir)
    with pytest.raises(SpikeBertError, match="text 2 is empty"):
        clf.predict(["fine", "   "])
    assert clf.predict([]) == []


def test_read_texts(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\n two \n", encoding="utf-8")
    assert read_texts(tmp_path / "a.txt") == ["one", "two"]
    (tmp_path / "a.csv").write_text('label,text\n1,"hello, world"\n0,bye\n', encoding="utf-8")
    assert read_texts(tmp_path / "a.csv") == ["hello, world", "bye"]
    (tmp_path / "a.jsonl").write_text('{"review": "x"}\n{"review": "y"}\n', encoding="utf-8")
    assert read_texts(tmp_path / "a.jsonl", text_column="review") == ["x", "y"]
    with pytest.raises(SpikeBertError, match="a.jsonl:1: no field 'text'"):
        read_texts(tmp_path / "a.jsonl")
    with pytest.raises(SpikeBertError, match="no such file"):
        read_texts(tmp_path / "missing.txt")


def run(capsys, *args):
    from spikebert.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_command(snn_dir, tmp_path, capsys):
    expected = Classifier.from_pretrained(snn_dir).predict(TEXTS)  # what the Python API says
    code, out, err = run(capsys, "predict", "--model", str(snn_dir), *TEXTS[:2])
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == [r["label"] for r in expected[:2]]
    assert [ln.split("\t")[2] for ln in lines] == TEXTS[:2]
    assert [float(ln.split("\t")[1]) for ln in lines] == pytest.approx([r["score"] for r in expected[:2]], abs=1e-3)
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "predict", "--model", str(snn_dir), "--file", str(f), "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert [p["text"] for p in obj["predictions"]] == TEXTS
    assert [p["label"] for p in obj["predictions"]] == [r["label"] for r in expected]
    assert obj["labels"] == list(LABELS.values())
    code, _, err = run(capsys, "predict", "--model", str(snn_dir))
    assert code == 2 and "give texts" in err
    code, _, err = run(capsys, "predict", "--model", str(snn_dir), "fine", "")
    assert code == 2 and "text 2 is empty" in err


def test_predict_at_another_time_step_count(snn_dir, bert_dir, capsys):
    saved = Classifier.from_pretrained(snn_dir)
    one = Classifier.from_pretrained(snn_dir, time_steps=1)
    assert saved.model.config.time_steps == 4 and one.model.config.time_steps == 1
    assert not torch.allclose(saved.probabilities(TEXTS), one.probabilities(TEXTS))
    code, out, err = run(capsys, "predict", "--model", str(snn_dir), "--time-steps", "1", "--json", *TEXTS)
    assert code == 0, err
    got = [p["probabilities"] for p in json.loads(out)["predictions"]]
    assert torch.allclose(torch.tensor([[p[k] for k in LABELS.values()] for p in got]), one.probabilities(TEXTS), atol=1e-5)
    code, _, err = run(capsys, "predict", "--model", str(bert_dir), "--time-steps", "2", "fine")
    assert code == 2 and "applies to a SpikeBERT model, not a bert" in err


def test_inspect_command(snn_dir, bert_dir, tmp_path, capsys, tokenizer):
    out_dir = tmp_path / "rasters"
    text = "a gorgeous , witty movie ."
    code, out, err = run(capsys, "inspect", "--model", str(snn_dir), text, "--output", str(out_dir))
    assert code == 0, err
    assert (out_dir / "layer0.png").stat().st_size > 0 and (out_dir / "layer1.png").stat().st_size > 0
    saved = np.load(out_dir / "spikes.npz")
    L = len(tokenizer(text)["input_ids"])
    assert list(saved["tokens"]) == tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    assert saved["layer1.mlp1"].shape == (4, L, 256) and saved["layer0.q"].shape == (4, L, 64)
    # the saved spikes are the model's: their rates equal the recorder's
    model = SpikeBertForSequenceClassification.from_pretrained(snn_dir).eval()
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad(), model.record_spikes() as rec:
        model(ids, torch.ones_like(ids))
    for name, rate in rec.rates().items():
        assert saved[name].mean() == pytest.approx(rate)
        assert set(np.unique(saved[name])) <= {0, 1}
    code, _, err = run(capsys, "inspect", "--model", str(bert_dir), text, "--output", str(tmp_path / "x"))
    assert code == 2 and "no spiking neurons" in err
    code, _, err = run(capsys, "inspect", "--model", str(snn_dir), " ", "--output", str(tmp_path / "y"))
    assert code == 2 and "empty" in err
