"""Fault injection: every artefact the project writes and reads back, damaged four ways (cut to
half its size, 64 bytes flipped inside, replaced by garbage of the same size, one file of several
deleted), is rebuilt (caches), falls back to the checkpoint before (checkpoints), or is one clear
error (a finished model folder): never a traceback, never used silently. A run that recovered ends
with the metrics and weights of the undamaged run. A full disk while writing any of them is one
line ``error: no space left on ...`` and leaves what was there before.

One stage-2 run (``reference``: 16 SST-2 sentences and their 16 augmented copies, one epoch of 4
steps, checkpoints at steps 2 and 4, the teacher's outputs cached) is the undamaged run; each case
damages a copy of its folders and runs again.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import SHARED, TINY_SHAPE, assert_one_error_line, run_cli
from spikebert.errors import SpikeBertError
from spikebert.training.manifest import verify

STAGE2 = ["distill", "task", "--task", "sst2", "--limit", "16", "--batch-size", "8", "--max-steps", "4", "--epochs",
          "1", "--save-every", "2", "--augment", "1", "--max-length", "32", *TINY_SHAPE]
SAME = ("dev_accuracy", "dev_macro_f1", "best_step", "steps", "history", "augmented_texts", "train_examples")
DAMAGES = ("truncate", "flip", "garbage", "delete")
CORPUS = SHARED / "corpora" / "en" / "nlp-corpus.txt"


def damage(path: Path, how: str) -> None:
    """Cut ``path`` to half, flip 64 bytes in its middle, replace it by as many random bytes, or delete it."""
    if how == "delete":
        path.unlink()
        return
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "flip":
        mid = len(data) // 2
        for i in range(max(0, mid - 32), min(len(data), mid + 32)):
            data[i] ^= 0xA5
    else:
        data = bytearray(os.urandom(len(data)))
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def reference(tiny_teacher, mini_sst2_dir, tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("faults")
    out, cache = root / "A", root / "cache"
    base = STAGE2 + ["--teacher", tiny_teacher, "--data-dir", mini_sst2_dir]
    assert run_cli(base + ["--output", out, "--cache-dir", cache]) == 0
    return {"base": base, "out": out, "cache": cache, "metrics": json.loads((out / "metrics.json").read_text())}


def _same_run(reference, out: Path):
    """``out`` ended as the reference run did: metrics, published model and last checkpoint."""
    m = json.loads((out / "metrics.json").read_text())
    for key in SAME:
        assert m[key] == reference["metrics"][key], f"metrics.json {key}: {m[key]!r}, undamaged {reference['metrics'][key]!r}"
    for rel in ("model.safetensors", "checkpoints/step-0000004/model.safetensors"):
        a, b = load_file(str(reference["out"] / rel)), load_file(str(out / rel))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{rel} differs"
    logged = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert logged == [json.loads(ln) for ln in (reference["out"] / "log.jsonl").read_text().splitlines()]
    assert verify(out) == [] and verify(out / "checkpoints" / "step-0000004") == []


def _no_traceback(capsys):
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured


# ---------------------------------------------------------------------------------------------
# checkpoints: fall back to the one before, resumed bit for bit


CHECKPOINT_FILE = {"truncate": "model.safetensors", "flip": "model.safetensors", "garbage": "trainer_state.pt",
                   "delete": "trainer_state.pt"}


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_checkpoint_falls_back_to_the_one_before(reference, tmp_path, capsys, how):
    out = shutil.copytree(reference["out"], tmp_path / "out")
    (out / "metrics.json").unlink()  # killed after its last checkpoint
    newest = out / "checkpoints" / "step-0000004"
    damage(newest / CHECKPOINT_FILE[how], how)
    capsys.readouterr()
    assert run_cli(reference["base"] + ["--output", out, "--cache-dir", reference["cache"], "--resume"]) == 0
    said = _no_traceback(capsys).out
    assert f"checkpoint {newest} is damaged" in said and f"falling back to {out / 'checkpoints' / 'step-0000002'}" in said
    assert "(step 2 of 4)" in said, said[-2000:]
    _same_run(reference, out)


def test_no_good_checkpoint_left_is_one_clear_error(reference, tmp_path, capsys):
    out = shutil.copytree(reference["out"], tmp_path / "out")
    (out / "metrics.json").unlink()
    for step in ("step-0000002", "step-0000004"):
        damage(out / "checkpoints" / step / "model.safetensors", "flip")
    capsys.readouterr()
    code = run_cli(reference["base"] + ["--output", out, "--cache-dir", reference["cache"], "--resume"])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, str(out / "checkpoints" / "step-0000004"), "delete")


def test_keep_checkpoints_keeps_the_newest_n(reference, tmp_path):
    out = tmp_path / "out"
    assert run_cli(reference["base"] + ["--output", out, "--cache-dir", reference["cache"], "--keep-checkpoints", "1",
                                        "--save-every", "1"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-0000004"]
    assert sorted(p.name for p in (reference["out"] / "checkpoints").glob("step-*")) == ["step-0000002",
                                                                                        "step-0000004"]


# ---------------------------------------------------------------------------------------------
# caches: rebuilt, saying so, and the run is the undamaged one


def _teacher_file(cache: Path, how: str) -> Path:
    name = {"truncate": "hidden.npy", "flip": "logits.npy", "garbage": "meta.json", "delete": "offsets.npy"}[how]
    return sorted((cache / "teacher-outputs").glob(f"*/{name}"))[0]


def _augmented_file(cache: Path, how: str) -> Path:
    return next(cache.glob("augmented-*.manifest.json" if how == "delete" else "augmented-*.jsonl"))


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("kind", ["teacher outputs", "augmented texts"])
def test_damaged_cache_is_rebuilt(reference, tmp_path, capsys, kind, how):
    cache = shutil.copytree(reference["cache"], tmp_path / "cache")
    target = (_teacher_file if kind == "teacher outputs" else _augmented_file)(cache, how)
    damage(target, how)
    capsys.readouterr()
    out = tmp_path / "out"
    assert run_cli(reference["base"] + ["--output", out, "--cache-dir", cache]) == 0
    said = _no_traceback(capsys).out
    assert f"{kind}: " in said and "rebuilding it" in said and str(target.parent) in said, said[-2000:]
    _same_run(reference, out)
    # rebuilt whole, and verified again
    if kind == "teacher outputs":
        assert all(verify(part) == [] for part in (cache / "teacher-outputs").iterdir())


def test_cache_without_manifest_is_rebuilt(reference, tmp_path, capsys):
    """A teacher-output cache an older version wrote (no manifest) is not trusted: built again."""
    cache = shutil.copytree(reference["cache"], tmp_path / "cache")
    for m in (cache / "teacher-outputs").glob("*/manifest.json"):
        m.unlink()
    capsys.readouterr()
    assert run_cli(reference["base"] + ["--output", tmp_path / "out", "--cache-dir", cache]) == 0
    assert "no manifest" in _no_traceback(capsys).out
    _same_run(reference, tmp_path / "out")


CORPUS_FILE = {"truncate": "tokens.arrow", "flip": "tokens.arrow", "garbage": "tokens.arrow", "delete": "manifest.json"}


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_tokenised_corpus_is_rebuilt(tokenizer, tmp_path, monkeypatch, how):
    import datasets

    from spikebert.data.corpus import load_corpus, tokens_cache_dir

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    said = []
    ids = lambda ds: [list(x) for x in ds.table["input_ids"]]  # noqa: E731
    before = ids(load_corpus([CORPUS], tokenizer, 32, limit=40, shuffle_seed=3, log=said.append))
    assert said == []
    target = next(tokens_cache_dir().glob(f"*/{CORPUS_FILE[how]}"))
    damage(target, how)
    after = ids(load_corpus([CORPUS], tokenizer, 32, limit=40, shuffle_seed=3, log=said.append))
    assert after == before
    assert len(said) == 1 and said[0].startswith("tokenised corpus: ") and "rebuilding it" in said[0], said
    assert verify(target.parent) == []


# ---------------------------------------------------------------------------------------------
# finished model folders and the run reports `spikebert run` reuses


MODEL_FILE = {"truncate": "model.safetensors", "flip": "model.safetensors", "garbage": "config.json",
              "delete": "model.safetensors"}


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_damaged_model_folder_is_one_clear_error(reference, tmp_path, mini_sst2_dir, capsys, how, command):
    model = shutil.copytree(reference["out"], tmp_path / "model", ignore=shutil.ignore_patterns("checkpoints"))
    damage(model / MODEL_FILE[how], how)
    args = (["evaluate", "--task", "sst2", "--data-dir", mini_sst2_dir] if command == "evaluate"
            else ["predict", "a fine film"])
    capsys.readouterr()
    assert run_cli(args + ["--model", model]) == 2
    assert_one_error_line(capsys.readouterr().err, str(model / MODEL_FILE[how]))


def test_model_folder_without_manifest_is_accepted(reference, tmp_path, mini_sst2_dir, capsys):
    """A folder an older version wrote has no manifest: safetensors' own checks decide."""
    model = shutil.copytree(reference["out"], tmp_path / "model", ignore=shutil.ignore_patterns("checkpoints"))
    (model / "manifest.json").unlink()
    assert run_cli(["evaluate", "--task", "sst2", "--data-dir", mini_sst2_dir, "--model", model, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == reference["metrics"]["dev_accuracy"]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_run_report_resumes_the_stage(reference, tmp_path, capsys, how):
    """``metrics.json`` marks a stage finished for `spikebert run`: damaged, the stage is taken as
    unfinished and resumed from its checkpoint, which writes it again as it was."""
    from spikebert.training.plots import finished_metrics

    out = shutil.copytree(reference["out"], tmp_path / "out")
    damage(out / "metrics.json", how)
    said = []
    assert finished_metrics(out, log=said.append) is None
    assert len(said) == (0 if how == "delete" else 1) and all("resumed from its last checkpoint" in s for s in said)
    assert run_cli(reference["base"] + ["--output", out, "--cache-dir", reference["cache"], "--resume"]) == 0
    _no_traceback(capsys)
    assert finished_metrics(out)["dev_accuracy"] == reference["metrics"]["dev_accuracy"]
    _same_run(reference, out)


def test_damaged_weights_of_a_finished_stage_are_one_clear_error(reference, tmp_path):
    from spikebert.training.plots import finished_metrics

    out = shutil.copytree(reference["out"], tmp_path / "out")
    damage(out / "model.safetensors", "flip")
    with pytest.raises(SpikeBertError, match="model.safetensors.*delete it"):
        finished_metrics(out)


# ---------------------------------------------------------------------------------------------
# a full disk midway through a write: one clear error, the state before intact


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_then_enospc(write):
    """A writer that writes half of what ``write(obj, file)`` would, then finds the disk full."""
    def writer(obj, path, *args, **kwargs):
        buf = io.BytesIO()
        write(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
        _enospc()
    return writer


def test_full_disk_while_checkpointing_is_one_clear_error(reference, tmp_path, capsys, monkeypatch):
    """The real command line: the checkpoint of step 4 meets a full disk half-way through its
    training state; the one of step 2 stays the newest, whole."""
    from spikebert.training import checkpoint

    real = torch.save
    calls = []

    def save(obj, path, *args, **kwargs):
        calls.append(path)
        return (_half_then_enospc(real) if len(calls) == 2 else real)(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    out = tmp_path / "out"
    code = run_cli(reference["base"] + ["--output", out, "--cache-dir", reference["cache"]])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, f"no space left on {out / 'checkpoints'}")
    root = out / "checkpoints"
    assert (root / "latest").read_text() == "step-0000002" and verify(root / "step-0000002") == []
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-0000002"]  # no half checkpoint
    monkeypatch.setattr(checkpoint.torch, "save", real)
    assert run_cli(reference["base"] + ["--output", out, "--cache-dir", reference["cache"], "--resume"]) == 0
    _same_run(reference, out)


def test_full_disk_while_publishing_a_model_leaves_the_folder_before(reference, tmp_path, monkeypatch):
    from safetensors.torch import save as st_save

    from spikebert.folders import load_classifier
    from spikebert.training import checkpoint

    model, tokenizer = load_classifier(reference["out"])
    out = tmp_path / "model"
    checkpoint.publish_model(model, tokenizer, out, metrics={"x": 1})
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def save_file(tensors, path, metadata=None):
        data = st_save(tensors, metadata)
        Path(path).write_bytes(data[: len(data) // 2])
        _enospc()

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(SpikeBertError, match=f"no space left on {out / 'model.safetensors'}"):
        checkpoint.publish_model(model, tokenizer, out, metrics={"x": 2})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert verify(out) == []


def test_full_disk_while_caching_is_one_clear_error(reference, tmp_path, monkeypatch, capsys, tokenizer):
    """Teacher outputs (``np.save`` of the logits, after the hidden states), augmented texts (the
    fsync of the file) and the tokenised corpus (``datasets``' writer): no part left that looks whole."""
    import datasets
    import numpy as np

    from spikebert.data.corpus import load_corpus, tokens_cache_dir

    real = np.save
    monkeypatch.setattr(np, "save", lambda file, arr, *a, **k: _half_then_enospc(lambda x, f: real(f, x))(arr, file))
    cache = tmp_path / "cache1"
    assert run_cli(reference["base"] + ["--output", tmp_path / "a", "--cache-dir", cache]) == 2
    assert_one_error_line(capsys.readouterr().err, f"no space left on {cache / 'teacher-outputs'}")
    assert not any((cache / "teacher-outputs").iterdir())
    monkeypatch.undo()

    monkeypatch.setattr(os, "fsync", _enospc)
    cache = tmp_path / "cache2"
    assert run_cli(reference["base"] + ["--output", tmp_path / "b", "--cache-dir", cache]) == 2
    assert_one_error_line(capsys.readouterr().err, f"no space left on {cache}/augmented-")
    assert not list(cache.glob("*augmented*"))
    monkeypatch.undo()

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    load_corpus([CORPUS], tokenizer, 32, limit=20, log=_unexpected)  # the text's own caches are made
    for name in ("write_batch", "write_table"):
        monkeypatch.setattr(datasets.arrow_writer.ArrowWriter, name, _enospc)
    with pytest.raises(SpikeBertError, match="no space left on .*spikebert-tokens"):
        load_corpus([CORPUS], tokenizer, 32, limit=40, log=_unexpected)
    assert len(list(tokens_cache_dir().glob("*/manifest.json"))) == 1  # the first corpus's alone


def _unexpected(line):
    pytest.fail(f"unexpected line: {line}")
