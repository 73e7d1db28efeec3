"""Chinese without an installable BERT: the data loaders, ``spikebert tokenizer train`` and
``spikebert teacher pretrain`` on the real shared corpora, and the pretrained teacher taken by
``spikebert teacher finetune``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from conftest import SHARED, assert_one_error_line, run_cli

CORPORA = Path(os.environ.get("SPIKEBERT_CORPORA") or SHARED / "corpora")
REVIEWS = CORPORA / "zh" / "online-shopping-reviews.txt"
DAILY = CORPORA / "zh" / "peoples-daily-1998-01.txt"


@pytest.fixture(scope="module")
def zh_corpora() -> tuple[Path, Path]:
    for p in (REVIEWS, DAILY):
        if not p.is_file():
            pytest.fail(f"the shared zh corpus is missing: {p} (set SPIKEBERT_CORPORA)", pytrace=False)
    return REVIEWS, DAILY


@pytest.fixture(scope="module")
def zh_tokenizer_dir(zh_corpora, tmp_path_factory) -> Path:
    """A tokenizer trained by the command line on the first 3000 lines of the reviews; the two
    corpus files follow one --corpus, as a shell glob (--corpus zh/*.txt) gives them."""
    out = tmp_path_factory.mktemp("zh-tok") / "tok"
    code = run_cli(["tokenizer", "train", "--corpus", zh_corpora[0], zh_corpora[1],
                    "--limit", "3000", "--vocab-size", "6000", "--output", out])
    assert code == 0
    return out


def _slice(path: Path, n: int) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(line.strip())
                if len(out) == n:
                    break
    return out


# ---------------------------------------------------------------------------------------------
# Data


def test_chinese_task_counts(data_dir):
    from spikebert.data.tasks import load_data

    train, dev = load_data("chnsenti", "train", data_dir), load_data("chnsenti", "dev", data_dir)
    assert (len(train.examples), len(dev.examples)) == (9600, 1200)
    assert train.language == "zh" and train.labels == ("negative", "positive")
    w_train, w_dev = load_data("waimai", "train", data_dir), load_data("waimai", "dev", data_dir)
    assert (len(w_train.examples), len(w_dev.examples)) == (9709, 1079)
    assert len(w_train.examples) + len(w_dev.examples) == 10788
    # the cut is stratified (1:2 positive:negative in both parts) and disjoint
    pos = lambda exs: sum(e.label for e in exs) / len(exs)  # noqa: E731
    assert abs(pos(w_train.examples) - pos(w_dev.examples)) < 0.01
    assert len({e.text for e in w_dev.examples} & {e.text for e in w_train.examples}) < 20


def test_add_task_texts_takes_train_split_only(data_dir, zh_corpora):
    from spikebert.data.tasks import load_data
    from spikebert.teachers.pretrain import pretraining_texts

    texts, sources = pretraining_texts([str(zh_corpora[0])], 10, ["waimai"], data_dir)
    train = [e.text for e in load_data("waimai", "train", data_dir).examples]
    assert texts[:10] == _slice(zh_corpora[0], 10)
    assert texts[10:] == train and sources["task_train_texts"] == {"waimai": 9709}


# ---------------------------------------------------------------------------------------------
# Tokenizer


def test_tokenizer_folder_loads_offline(zh_tokenizer_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(zh_tokenizer_dir))
    assert [tok.convert_tokens_to_ids(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert tok.pad_token_id == 0 and tok.mask_token_id == 4
    vocab = (zh_tokenizer_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == len(tok) <= 6000
    assert all(tok.convert_tokens_to_ids(t) == i for i, t in enumerate(vocab))
    info = json.loads((zh_tokenizer_dir / "tokenizer_info.json").read_text())
    assert info["texts"] == 3000 and info["single_characters"] > 2000
    assert info["sources"] == [str(REVIEWS), str(DAILY)]


def test_tokenizer_splits_cjk_into_characters_and_round_trips(zh_tokenizer_dir, zh_corpora):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(zh_tokenizer_dir))
    text = "这家店的菜很好吃，送餐也快！"
    enc = tok(text)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert tokens[1:-1] == list(text)  # one token a character, punctuation too
    mixed = "iPhone手机 Hello World，价格2999元"
    decoded = tok.decode(tok(mixed)["input_ids"], skip_special_tokens=True)
    assert decoded.replace(" ", "") == mixed.lower().replace(" ", "")
    assert "hello world" in decoded  # ASCII words lowercased, kept whole
    # real lines of the training slice come back character for character (the BERT decoder
    # puts a space between CJK characters)
    lines = _slice(zh_corpora[0], 300)
    exact = 0
    for line in lines:
        ids = tok(line, truncation=False)["input_ids"]
        if tok.unk_token_id in ids:
            continue
        exact += tok.decode(ids, skip_special_tokens=True).replace(" ", "") == line.lower().replace(" ", "")
    assert exact >= 0.95 * len(lines)


def test_tokenizer_train_without_text_is_one_error_line(tmp_path, capsys):
    assert run_cli(["tokenizer", "train", "--output", tmp_path / "t"]) == 2
    assert_one_error_line(capsys.readouterr().err, "--corpus")
    # a stray word with no --corpus to belong to is a usage error, not a corpus file
    assert run_cli(["tokenizer", "train", "--output", tmp_path / "t", "stray.txt"]) == 2
    err = capsys.readouterr().err
    assert "unexpected extra argument" in err and "stray.txt" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Masking


def test_masking_is_bert_style_and_deterministic(zh_tokenizer_dir, zh_corpora):
    from transformers import AutoTokenizer

    from spikebert.data.batching import Collator, tokenize
    from spikebert.teachers.pretrain import Masker

    tok = AutoTokenizer.from_pretrained(str(zh_tokenizer_dir))
    ids = tokenize(tok, _slice(zh_corpora[0], 400), 128)
    batch = Collator(0)([{"input_ids": x, "index": i} for i, x in enumerate(ids)])
    masker = Masker(tok, seed=7)
    masked, labels = masker(batch["input_ids"], batch["attention_mask"], batch["index"], epoch=0)
    again, labels2 = Masker(tok, seed=7)(batch["input_ids"], batch["attention_mask"], batch["index"], epoch=0)
    assert torch.equal(masked, again) and torch.equal(labels, labels2)
    other, labels3 = masker(batch["input_ids"], batch["attention_mask"], batch["index"], epoch=1)
    assert not torch.equal(labels, labels3)  # a new epoch masks anew
    chosen = labels != -100
    special = (batch["input_ids"] <= 4)  # [PAD] [UNK] [CLS] [SEP] [MASK]
    assert not (chosen & special).any()
    assert torch.equal(labels[chosen], batch["input_ids"][chosen])
    assert (masked[~chosen] == batch["input_ids"][~chosen]).all()
    assert chosen.any(dim=1).all()  # every text has something to predict
    rate = chosen.sum().item() / ((~special) & (batch["attention_mask"] == 1)).sum().item()
    assert 0.13 < rate < 0.18
    n = chosen.sum().item()
    to_mask = (masked[chosen] == tok.mask_token_id).sum().item() / n
    kept = (masked[chosen] == batch["input_ids"][chosen]).sum().item() / n
    assert 0.75 < to_mask < 0.85 and 0.06 < kept < 0.14


# ---------------------------------------------------------------------------------------------
# Pre-training and fine-tuning


@pytest.fixture(scope="module")
def pretrained_dir(zh_tokenizer_dir, zh_corpora, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zh-bert") / "bert"
    code = run_cli(["teacher", "pretrain", "--corpus", zh_corpora[0], "--limit", "400",
                    "--tokenizer", zh_tokenizer_dir, "--output", out, "--layers", "2", "--hidden", "64",
                    "--heads", "2", "--max-steps", "30", "--batch-size", "16", "--lr", "2e-3",
                    "--max-length", "64", "--seed", "1"])
    assert code == 0
    return out


def test_pretraining_lowers_the_masked_lm_loss(pretrained_dir):
    log = [json.loads(ln) for ln in (pretrained_dir / "log.jsonl").read_text().splitlines() if ln.strip()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert log[-1]["step"] == 30 and len(losses) >= 3
    assert losses[-1] < losses[0] - 0.5, losses
    m = json.loads((pretrained_dir / "metrics.json").read_text())
    assert m["kind"] == "teacher_pretrain" and m["steps"] == 30 and m["heldout_texts"] == 40
    assert m["heldout_loss"] < m["heldout_loss_at_start"] - 0.3
    assert m["bert"]["num_hidden_layers"] == 2 and m["bert"]["hidden_size"] == 64


def test_pretrained_folder_is_a_standard_bert(pretrained_dir, zh_tokenizer_dir):
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForMaskedLM

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "metrics.json"):
        assert (pretrained_dir / name).is_file(), name
    assert (pretrained_dir / "vocab.txt").read_text() == (zh_tokenizer_dir / "vocab.txt").read_text()
    mlm = BertForMaskedLM.from_pretrained(str(pretrained_dir))
    assert mlm.config.architectures == ["BertForMaskedLM"]
    clf = AutoModelForSequenceClassification.from_pretrained(str(pretrained_dir), num_labels=2)
    weights = load_file(str(pretrained_dir / "model.safetensors"))
    key = "bert.encoder.layer.1.output.dense.weight"
    assert torch.equal(clf.state_dict()[key], weights[key])  # the encoder is the pretrained one
    # the folder holds the best model: its held-out loss, measured anew from the folder on the
    # held-out texts with the job's masks, is the one metrics.json reports
    from spikebert.data.batching import Encoded, tokenize
    from spikebert.teachers.pretrain import EVAL_TEXTS, Masker, MaskedLM, heldout_loss, holdout_split, pretraining_texts

    tok = AutoTokenizer.from_pretrained(str(pretrained_dir))
    texts, _ = pretraining_texts([str(REVIEWS)], 400)
    ids = tokenize(tok, texts, 64)
    _, held = holdout_split(len(ids), EVAL_TEXTS, 1)
    again = heldout_loss(MaskedLM(mlm), Encoded([ids[i] for i in held], pad_token_id=tok.pad_token_id),
                         Masker(tok, 1), tok.pad_token_id)
    m = json.loads((pretrained_dir / "metrics.json").read_text())
    assert again["masked_tokens"] > 100 and again["loss"] == pytest.approx(m["heldout_loss"], rel=1e-5)
    assert again["mlm_accuracy"] == pytest.approx(m["heldout_mlm_accuracy"], abs=1e-9)


def test_finetune_takes_the_pretrained_teacher(pretrained_dir, data_dir, tmp_path):
    out = tmp_path / "teacher"
    assert run_cli(["teacher", "finetune", "--task", "chnsenti", "--teacher", pretrained_dir, "--data-dir",
                    data_dir, "--limit", "64", "--max-steps", "3", "--max-length", "64", "--output", out]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["steps"] == 3 and m["dev_examples"] == 1200
    from spikebert.data.batching import encode_examples
    from spikebert.data.tasks import load_data
    from spikebert.folders import load_classifier
    from spikebert.training.metrics import evaluate_dataset

    model, tok = load_classifier(out)
    assert model.config.num_labels == 2 and model.config.vocab_size == len(tok)
    # the published model is the one measured: its dev accuracy, recomputed from the folder, is the
    # reported one (a model saved at another step, or a metric over the wrong examples, would differ)
    dev = load_data("chnsenti", "dev", data_dir)
    again = evaluate_dataset(model, encode_examples(tok, dev.examples, 64), dev.labels)
    assert again["n"] == 1200 and again["accuracy"] == m["dev_accuracy"]
    assert again["macro_f1"] == pytest.approx(m["dev_macro_f1"], abs=1e-12)


def _pretrain_split_batches(texts, tokenizer_dir, out, loss_wrapper=None, resume=False) -> dict:
    """``pretrain_teacher`` on ``texts`` with batches of 8 split into micro-batches of at most 64
    token slots (a review is over 8 tokens, so every batch is split, into 2 to 4 parts): 40 train
    and 4 held-out texts, 5 steps an epoch, 2 epochs, a checkpoint every 3 steps and at epoch ends.
    ``loss_wrapper(loss_fn) -> loss_fn`` wraps the job's loss function (to kill the run, or count)."""
    from spikebert.teachers import pretrain
    from spikebert.training.trainer import TrainArgs

    real_fit = pretrain.fit

    def fit(trainable, data, args, loss_fn, *rest, **kw):
        return real_fit(trainable, data, args, loss_wrapper(loss_fn) if loss_wrapper else loss_fn, *rest, **kw)

    args = TrainArgs(output=str(out), seed=5, epochs=2, batch_size=8, lr=2e-3, warmup=0.0, schedule="linear",
                     save_every=3, eval_every=3, max_batch_tokens=64, resume=resume)
    pretrain.fit = fit
    try:
        return pretrain.pretrain_teacher(texts, str(tokenizer_dir), args, shape=dict(layers=1, hidden=32, heads=2),
                                         max_length=32, eval_texts=4)
    finally:
        pretrain.fit = real_fit


def test_pretraining_killed_and_resumed_with_split_batches_ends_as_if_never_stopped(zh_tokenizer_dir, zh_corpora,
                                                                                      tmp_path, one_thread):
    """The masks are a function of (seed, text, epoch), the epoch being the one ``fit`` says. When
    the job counted its own loss-function calls instead, the count ran ahead of the real epoch on
    split batches (one call a micro-batch) and restarted at the checkpoint's step on resume, so a
    resumed run masked other tokens than an uninterrupted one from then on: its weights differed.
    Here every batch is split and the run is killed in its second epoch, after the checkpoint of
    step 6 (the 7th step's loss is where the kill lands), then resumed: weights, held-out metrics
    and log must be those of the uninterrupted run, bit for bit."""
    from collections import Counter

    from safetensors.torch import load_file

    texts = _slice(zh_corpora[0], 44)
    calls = Counter()

    def counted(loss_fn):
        def loss(m, batch, step, epoch):
            calls[step] += 1
            return loss_fn(m, batch, step, epoch)
        return loss

    def killed_at_step_7(loss_fn):
        def loss(m, batch, step, epoch):
            if step == 6:
                raise KeyboardInterrupt  # as a SIGKILL would, in the middle of the 7th step
            return loss_fn(m, batch, step, epoch)
        return loss

    full = _pretrain_split_batches(texts, zh_tokenizer_dir, tmp_path / "full", counted)
    assert full["steps"] == 10 and sorted(calls) == list(range(10))
    assert min(calls.values()) >= 2, f"a batch was not split into micro-batches: {calls}"
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        _pretrain_split_batches(texts, zh_tokenizer_dir, cut, killed_at_step_7)
    assert (cut / "checkpoints" / "latest").read_text() == "step-0000006"
    resumed = _pretrain_split_batches(texts, zh_tokenizer_dir, cut, resume=True)

    for rel in ("checkpoints/step-0000010/model.safetensors", "model.safetensors"):
        a, b = load_file(str(tmp_path / "full" / rel)), load_file(str(cut / rel))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{rel} differs after the resume"
    for key in ("steps", "best_step", "heldout_loss", "heldout_mlm_accuracy", "history", "final_train_loss"):
        assert resumed[key] == full[key], (key, resumed[key], full[key])
    assert (cut / "log.jsonl").read_text() == (tmp_path / "full" / "log.jsonl").read_text()


def test_pretrain_bad_shape_is_one_error_line(zh_tokenizer_dir, zh_corpora, tmp_path, capsys):
    code = run_cli(["teacher", "pretrain", "--corpus", zh_corpora[0], "--limit", "50", "--tokenizer",
                    zh_tokenizer_dir, "--output", tmp_path / "x", "--hidden", "66", "--heads", "4"])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, "--hidden 66", "--heads 4")
