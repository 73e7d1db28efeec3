"""Two-stage distillation, augmentation, direct training and `spikebert run` on real data (small)."""

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from conftest import SHARED, TINY_SHAPE, assert_one_error_line, run_cli

from spikebert.training.checkpoint import checkpoints_newest_first

CORPUS = SHARED / "corpora" / "en" / "nlp-corpus.txt"


def log_losses(folder: Path, key: str = "loss") -> list[float]:
    rows = [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines() if x.strip()]
    return [r[key] for r in rows if key in r]


@pytest.fixture(scope="module")
def stage1(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stage1") / "s1"
    code = run_cli(["distill", "pretrain", "--corpus", CORPUS, "--limit", "640", "--sample", "--max-steps", "40",
                    "--batch-size", "16", "--max-length", "48", "--lr", "3e-3", "--output", out, *TINY_SHAPE])
    assert code == 0
    return out


def test_stage1_loss_falls_and_saves_a_student(stage1):
    losses = log_losses(stage1)
    assert len(losses) >= 10
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses
    from spikebert.distill.config import STAGE1
    from spikebert.folders import is_spikebert

    m = json.loads((stage1 / "metrics.json").read_text())
    assert m["kind"] == "stage1" and m["steps"] == 40
    # the distillation config it ran with, whole: the feature MSE alone, the resolved layer map
    assert m["distillation"] == {"weights": asdict(STAGE1), "layer_map": "1:6", "augment": None,
                               "inherit": False}
    assert m["texts"] == 640 and m["sample_seed"] == 42  # --sample: drawn by --seed from every line
    assert m["shape"]["depth"] == 1 and m["shape"]["width"] == 64 and m["shape"]["input_encoding"] == "real"
    # what its floats depend on besides seed and data (docs/reliability.md, "Reproducibility")
    import torch

    env = m["environment"]
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert env["device"] == "cpu" and env["processes"] == 1 and "gpu" not in env
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["cpu"]
    assert is_spikebert(stage1)
    cfg = json.loads((stage1 / "config.json").read_text())
    assert cfg["hidden_size"] == 64 and cfg["teacher_hidden_size"] == 384


def test_a_corpus_limit_takes_the_first_lines_or_a_seeded_sample_of_all():
    from transformers import AutoTokenizer

    from spikebert.data.corpus import load_corpus
    from spikebert.teachers.loading import resolve_teacher

    tok = AutoTokenizer.from_pretrained(resolve_teacher(None))
    lines = [ln.strip() for ln in CORPUS.read_text(encoding="utf-8").split("\n") if ln.strip()]

    def texts(ds):
        return [tok.decode(ids, skip_special_tokens=True) for ids in ds.table["input_ids"]]

    first = texts(load_corpus([CORPUS], tok, 64, limit=20))
    assert first == [tok.decode(tok(t, truncation=True, max_length=64)["input_ids"], skip_special_tokens=True)
                     for t in lines[:20]]
    sample = texts(load_corpus([CORPUS], tok, 64, limit=20, shuffle_seed=42))
    assert len(sample) == 20 and sample != first
    assert texts(load_corpus([CORPUS], tok, 64, limit=20, shuffle_seed=42)) == sample  # reproducible
    assert texts(load_corpus([CORPUS], tok, 64, limit=20, shuffle_seed=1)) != sample


def test_train_direct_with_compiled_blocks(mini_sst2_dir, tmp_path, capsys, monkeypatch):
    """SPIKEBERT_COMPILE=blocks reaches the trainer: the student's blocks run compiled, the run
    finishes and saves a loadable student; a value it does not know is refused before any file."""
    from spikebert.folders import load_classifier

    args = ["train-direct", "--task", "sst2", "--data-dir", mini_sst2_dir, "--max-steps", "2", "--batch-size", "16",
            "--max-length", "32", *TINY_SHAPE]
    monkeypatch.setenv("SPIKEBERT_COMPILE", "fused")
    assert run_cli([*args, "--output", tmp_path / "bad"]) == 2
    assert_one_error_line(capsys.readouterr().err, "SPIKEBERT_COMPILE", "fused", "blocks")
    assert not (tmp_path / "bad").exists()
    monkeypatch.setenv("SPIKEBERT_COMPILE", "blocks")
    assert run_cli([*args, "--output", tmp_path / "out"]) == 0
    assert "spiking blocks run under torch.compile" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["steps"] == 2
    load_classifier(tmp_path / "out")


def load_compare():
    import importlib.util

    spec = importlib.util.spec_from_file_location("compare", Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    return compare


def test_compare_takes_a_flag_list_that_starts_with_dashes():
    """`compare.py stage1 --stage1-variants --init-from-teacher`: one variant, given as the flag
    itself, is the option's value (argparse alone exits: "expected one argument")."""
    compare = load_compare()
    a = compare.parse(["stage1", "--stage1-variants", "--init-from-teacher", "--variants", "--w-attn 1", "--seeds", "0,42"])
    assert (a.stage1_variants, a.variants, a.seeds) == ("--init-from-teacher", "--w-attn 1", "0,42")
    assert compare.parse(["stage2", "--variants", ";--w-attn 1"]).variants == ";--w-attn 1"


def test_compare_table_means_spreads_lead_kept_and_the_default_rule():
    """The summary of benchmarks/compare.py: per task and variant the mean and spread over seeds, the
    share of the teacher's lead kept, "–" for what was not measured, and the verdict by the rule a
    default changes by (more than both spreads above the first variant, on every task)."""
    compare = load_compare()
    assert compare.lead_kept(0.80, 0.50, 0.90) == pytest.approx(0.75)
    assert compare.lead_kept(0.80, 0.50, None) is None and compare.lead_kept(0.80, 0.50, 0.50) is None

    def row(task, variant, seed, acc, **more):
        return {"task": task, "variant": variant, "seed": seed, "accuracy": acc, "macro_f1": acc,
                "lead_kept": compare.lead_kept(acc, 0.5, 0.9), "minutes": 10.0, **more}

    rows = [row("sst2", "defaults", 0, 0.80, strict=0.7), row("sst2", "defaults", 1, 0.82, strict=0.8),
            row("mr", "defaults", 0, 0.76), row("mr", "defaults", 1, 0.77),
            row("sst2", "--a", 0, 0.85), row("sst2", "--a", 1, 0.86), row("mr", "--a", 0, 0.79), row("mr", "--a", 1, 0.80),
            row("sst2", "--b", 0, 0.83), row("sst2", "--b", 1, 0.84), row("mr", "--b", 0, 0.77), row("mr", "--b", 1, 0.775)]
    table = compare.seeds_table(rows)
    assert "| sst2 | `defaults` | 2 | 81.00 (2.00) | 81.00 | 77.5 | 75.0 | – | – | – | 10.0 |" in table
    assert "| mr | `--a` | 2 | 79.50 (1.00) | 79.50 | 73.8 | – |" in table
    assert "`--a` beats `defaults` by more than the seeds' spread on every task" in table
    assert "`--b` does not beat `defaults` by more than the seeds' spread on every task (not on mr)" in table


def test_compare_stage2_builds_one_cache_dir_for_every_output(stage1, tiny_teacher, mini_sst2_dir, tmp_path):
    """benchmarks/compare.py stage2 --cache-dir: the teacher's outputs and the augmented texts are
    built once, in that folder; a second call with another --output reads them and adds nothing.
    With --energy each student's energy figures join its row; the same call again reuses what finished."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SPIKEBERT_DATA": str(mini_sst2_dir), "PYTHONPATH": str(repo / "src"), "OMP_NUM_THREADS": "1"}
    cache, seen, rows = tmp_path / "cache", None, {}
    from spikebert.data.tasks import load_data

    teacher = json.loads((tiny_teacher / "metrics.json").read_text())["dev_accuracy"]
    dev = load_data("sst2", "dev", data_dir=mini_sst2_dir)
    share = max(dev.label_counts().values()) / len(dev.examples)

    def compare(out):
        return subprocess.run([sys.executable, str(repo / "benchmarks" / "compare.py"), "stage2", "--task", "sst2",
                               "--teacher", str(tiny_teacher), "--init", str(stage1), "--epochs", "1",
                               "--variants", "--batch-size 16 --max-length 48", "--output", str(out),
                               "--cache-dir", str(cache), "--energy"], capture_output=True, text=True, env=env)

    for out in (tmp_path / "a", tmp_path / "b"):
        res = compare(out)
        assert res.returncode == 0, res.stderr[-2000:]
        m = json.loads((out / "--batch-size_16_--max-length_48__seed_0_" / "metrics.json").read_text())
        assert m["steps"] > 0
        # the summary: one row per run in compare.json and the Markdown table on stdout
        [row] = json.loads((out / "compare.json").read_text())
        rows[out.name] = row
        assert (row["variant"], row["seed"], row["accuracy"]) == ("--batch-size 16 --max-length 48", "0", m["dev_accuracy"])
        assert row["lead_kept"] == (None if teacher <= share else pytest.approx((m["dev_accuracy"] - share) / (teacher - share)))
        # dev after every epoch, in order; the run kept (and reported) the best of them
        assert row["dev_by_epoch"] == [h["dev_accuracy"] for h in m["history"]] and len(row["dev_by_epoch"]) == 1
        assert max(row["dev_by_epoch"]) == row["accuracy"]
        assert "| sst2 | `--batch-size 16 --max-length 48` | 1 |" in res.stdout
        # --energy: `spikebert energy --json` of the student, its figures in the row and kept beside it
        energy = json.loads((out / "--batch-size_16_--max-length_48__seed_0_.energy.json").read_text())
        assert (row["strict"], row["paper"]) == (energy["energy_ratio"], energy["conventions"]["paper"]["energy_ratio"])
        assert 0 < row["nonzero"] <= 1 and row["level"] == energy["firing_rate"]
        assert not (out / "teacher-outputs").exists()
        files = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
        assert seen is None or files == seen  # the second call wrote nothing there
        seen = files
    assert any(p.parts[len(cache.parts)] == "teacher-outputs" for p in seen)
    # the same call again (as after a kill): the finished run and its energy are read back, not redone
    first = tmp_path / "a"
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file() and p.name != "compare.json"}
    res = compare(first)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "reusing" in res.stdout
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file() and p.name != "compare.json"} == before
    [again] = json.loads((first / "compare.json").read_text())
    assert (again["accuracy"], again["strict"]) == (rows["a"]["accuracy"], rows["a"]["strict"])


def test_stage2_from_stage1_chooses_best_on_dev(stage1, tiny_teacher, mini_sst2_dir, tmp_path, capsys):
    from spikebert.distill.config import AugmentConfig, LossWeights

    out = tmp_path / "s2"
    code = run_cli(["distill", "task", "--task", "sst2", "--data-dir", mini_sst2_dir, "--teacher", tiny_teacher,
                    "--init", stage1, "--epochs", "3", "--batch-size", "16", "--max-length", "48",
                    "--lr", "2e-3", "--output", out])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    # no weight or augmentation flag given: the whole config is the dataclasses' defaults (and --seed)
    assert m["distillation"] == {"weights": asdict(LossWeights()), "layer_map": "1:6",
                            "augment": asdict(AugmentConfig(seed=42)), "inherit": False}
    dev_scores = [h["dev_accuracy"] for h in m["history"]]
    assert len(dev_scores) == 3  # one evaluation per epoch
    assert m["dev_accuracy"] == max(dev_scores)
    assert m["best_step"] == m["history"][dev_scores.index(max(dev_scores))]["step"]
    assert m["augmented_texts"] > 0 and m["train_examples"] == 64 + m["augmented_texts"]
    terms = {k for r in (json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()) for k in r}
    assert {"ce", "kl", "rep", "emb", "lr", "loss"} <= terms
    assert (out / "training.png").stat().st_size > 10_000  # the run's curves, for a person to look at
    # the folder holds the best model: evaluating it gives the recorded best dev accuracy
    capsys.readouterr()
    assert run_cli(["evaluate", "--model", out, "--task", "sst2", "--data-dir", mini_sst2_dir, "--max-length", "48",
                    "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "spikebert" and result["n"] == 48
    assert abs(result["accuracy"] - m["dev_accuracy"]) < 1e-9
    # the same model at another T (T owns no weights); a BERT has no T
    T = json.loads((out / "config.json").read_text())["time_steps"]
    assert run_cli(["evaluate", "--model", out, "--task", "sst2", "--data-dir", mini_sst2_dir, "--max-length", "48",
                    "--time-steps", str(T + 1), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["time_steps"] == T + 1
    assert run_cli(["evaluate", "--model", tiny_teacher, "--task", "sst2", "--data-dir", mini_sst2_dir,
                    "--time-steps", "2"]) == 2
    assert "applies to a SpikeBERT model" in capsys.readouterr().err


def test_stage1_mismatch_is_a_clear_error(stage1, tiny_teacher, mini_sst2_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    # a student shape that contradicts the stage-1 folder
    code = run_cli(["distill", "task", "--task", "sst2", "--data-dir", mini_sst2_dir, "--teacher", tiny_teacher,
                    "--init", stage1, "--width", "32", "--max-steps", "1", "--output", tmp_path / "a"])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, str(stage1), "width=64", "width=32")
    # the input encoding is architecture too: a stage-1 student of real input is not a spike one
    code = run_cli(["distill", "task", "--task", "sst2", "--data-dir", mini_sst2_dir, "--teacher", tiny_teacher,
                    "--init", stage1, "--input-encoding", "spike", "--max-steps", "1", "--output", tmp_path / "e"])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, str(stage1), "input_encoding=real", "input_encoding=spike")
    # T, tau and threshold own no weights: stage 2 may set them apart from stage 1
    T = json.loads((stage1 / "config.json").read_text())["time_steps"] + 1
    assert run_cli(["distill", "task", "--task", "sst2", "--data-dir", mini_sst2_dir, "--teacher", tiny_teacher,
                    "--init", stage1, "--time-steps", str(T), "--max-steps", "1", "--output", tmp_path / "t"]) == 0
    assert json.loads((tmp_path / "t" / "config.json").read_text())["time_steps"] == T
    # a stage-1 folder with a tensor missing: named, not skipped
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in stage1.iterdir():
        if f.is_file() and f.name != "manifest.json":  # edited by hand: its manifest would name the edit
            (broken / f.name).write_bytes(f.read_bytes())
    state = load_file(str(broken / "model.safetensors"))
    del state["spikebert.layers.0.mlp.fc2.linear.weight"]
    save_file(state, str(broken / "model.safetensors"))
    code = run_cli(["distill", "task", "--task", "sst2", "--data-dir", mini_sst2_dir, "--teacher", tiny_teacher,
                    "--init", broken, "--max-steps", "1", "--output", tmp_path / "b"])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing tensor spikebert.layers.0.mlp.fc2.linear.weight" in err


def test_augmentation_is_reproducible_and_soft_labelled(tiny_teacher):
    from spikebert.distill.augment import AugmentConfig, augment
    from spikebert.data.batching import tokenize
    from spikebert.data.tasks import Example, TaskData
    from spikebert.distill.stages import _train_set
    from spikebert.folders import load_classifier

    model, tok = load_classifier(tiny_teacher)
    emb = model.get_input_embeddings().weight
    texts = ["a stirring , funny and finally transporting re-imagining of beauty and the beast",
             "apparently reassembled from the cutting-room floor of any given daytime soap ."] * 3
    a = augment(texts, tok, emb, AugmentConfig(copies=4, seed=1))
    b = augment(texts, tok, emb, AugmentConfig(copies=4, seed=1))
    c = augment(texts, tok, emb, AugmentConfig(copies=4, seed=2))
    assert a == b and a != c
    assert len(a) > len(texts) and all(t not in texts for t in a)
    assert any(tok.mask_token in t for t in a)  # masking happened
    data = _train_set(tok, TaskData("x", ("neg", "pos"), "en", [Example(t, 1) for t in texts]), a, 32)
    # the originals with their labels, then every augmented copy, tokenised, with no hard label
    assert data.input_ids == tokenize(tok, texts + a, 32) and data.pad_token_id == tok.pad_token_id
    assert data.labels[:len(texts)] == [1] * len(texts) and set(data.labels[len(texts):]) == {-100}


def test_direct_training_learns_from_labels(data_dir, one_thread, tmp_path):
    """The tiny student trained on labels alone for 100 steps (1,600 real SST-2 sentences, two
    epochs) beats the majority class on the 872 held-out dev sentences by a wide margin (about 70 %
    against 51 %), and its cross-entropy falls."""
    from spikebert.data.tasks import load_data

    out = tmp_path / "direct"
    code = run_cli(["train-direct", "--task", "sst2", "--data-dir", data_dir, "--limit", "1600", "--epochs", "2",
                    "--batch-size", "32", "--max-length", "48", "--lr", "3e-3", "--output", out, *TINY_SHAPE])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["kind"] == "direct" and m["steps"] == 100 and m["dev_examples"] == 872
    dev = load_data("sst2", "dev", data_dir)
    majority = max(dev.label_counts().values()) / len(dev.examples)
    assert m["dev_accuracy"] >= majority + 0.10, (m["dev_accuracy"], majority)
    losses = log_losses(out, "ce")
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, losses
    assert m["distillation"]["weights"]["ce"] == 1.0 and m["distillation"]["weights"]["kl"] == 0.0


def test_a_student_shape_names_one_run_folder():
    from spikebert.distill.config import LossWeights, StudentShape
    from spikebert.pipeline import run_tag, shape_tag

    cpu = StudentShape(time_steps=4)
    assert shape_tag(cpu, StudentShape(time_steps=4)) == ""  # the preset's own folders
    assert shape_tag(cpu, StudentShape(time_steps=2, depth=12)) == "-L12-T2"
    assert shape_tag(StudentShape(), StudentShape(tau=1.5, positions=True)) == "-tau1.5-pos"
    # the input encoding is named only when it differs from the preset's (real, the model's default)
    assert shape_tag(cpu, StudentShape(time_steps=4, input_encoding="spike")) == "-spike"
    assert shape_tag(cpu, StudentShape(time_steps=8, input_encoding="spike")) == "-T8-spike"
    assert shape_tag(cpu, StudentShape(time_steps=4, input_encoding="real")) == ""
    assert shape_tag(StudentShape(input_encoding="spike"), StudentShape(input_encoding="real")) == "-real"
    # values equal to the model's defaults are the preset's student: the same folder
    assert shape_tag(cpu, StudentShape(time_steps=4, positions=False, tau=2.0)) == ""
    # a firing-rate penalty trains another student: a folder of its own
    assert run_tag(cpu, StudentShape(time_steps=4), LossWeights(spikes=0.1)) == "-spikes0.1"
    assert run_tag(cpu, StudentShape(input_encoding="spike"), LossWeights(energy=0.5)) == "-spike-energy0.5"
    assert run_tag(cpu, StudentShape(time_steps=4), LossWeights()) == ""


def test_run_tiny_goes_through_every_stage(tiny_teacher, mini_sst2_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPIKEBERT_CORPORA", str(SHARED / "corpora"))
    work = tmp_path / "runs"
    code = run_cli(["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work])
    assert code == 0
    report = json.loads((work / "sst2" / "report.json").read_text())
    assert set(report["stages"]) == {"teacher", "stage1", "stage2"}
    assert not any(s["reused"] for s in report["stages"].values())
    energy = json.loads((work / "sst2" / "energy" / "energy.json").read_text())
    assert report["energy"]["snn_energy_mj"] == energy["snn_energy_mj"]
    assert report["energy"]["energy_ratio"] == pytest.approx(energy["snn_energy_mj"] / energy["ann_energy_mj"])
    assert 0 < energy["firing_rate"] < 1 and energy["n"] == 48  # the student fires, not always; all of dev
    assert (work / "sst2" / "snn" / "model.safetensors").exists()
    # a second run reuses every finished stage
    capsys.readouterr()
    assert run_cli(["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work,
                    "--no-energy"]) == 0
    report = json.loads((work / "sst2" / "report.json").read_text())
    assert all(s["reused"] for s in report["stages"].values())
    # another student shape reuses the teacher only: its stage 1 and stage 2 get folders of their own
    # (checkpointed every step, the newest three kept: what --save-every / --keep-checkpoints ask)
    assert run_cli(["run", "--task", "sst2", "--preset", "tiny", "--data-dir", mini_sst2_dir, "--workdir", work,
                    "--time-steps", "3", "--input-encoding", "spike", "--no-energy",
                    "--save-every", "1", "--keep-checkpoints", "3"]) == 0
    report = json.loads((work / "sst2" / "report-T3-spike.json").read_text())
    assert report["stages"]["teacher"]["reused"]
    assert not report["stages"]["stage1"]["reused"] and not report["stages"]["stage2"]["reused"]
    assert report["stages"]["stage1"]["folder"].endswith("-tiny-T3-spike")
    for stage in ("stage1", "stage2"):
        kept = checkpoints_newest_first(Path(report["stages"][stage]["folder"]))
        assert len(kept) == 3, (stage, kept)
    assert len(checkpoints_newest_first(work / "sst2" / "snn")) == 1  # the default: at the end only
    assert report["shape"]["input_encoding"] == "spike" and report["shape"]["time_steps"] == 3
    for folder in (work / "sst2" / "snn-T3-spike", Path(report["stages"]["stage1"]["folder"])):
        config = json.loads((folder / "config.json").read_text())
        assert config["time_steps"] == 3 and config["input_encoding"] == "spike"
    config = json.loads((work / "sst2" / "snn" / "config.json").read_text())
    assert config["time_steps"] == 2 and config.get("input_encoding", "real") == "real"


def test_run_tiny_chinese_builds_its_own_teacher(mini_chnsenti_dir, tmp_path, monkeypatch):
    """No Chinese BERT is installed: `run` trains a tokenizer and pre-trains a teacher from the
    corpus, then goes through every stage; a second Chinese task reuses that teacher."""
    monkeypatch.setenv("SPIKEBERT_CORPORA", str(SHARED / "corpora"))
    mini = mini_chnsenti_dir
    work = tmp_path / "runs"
    assert run_cli(["run", "--task", "chnsenti", "--preset", "tiny", "--data-dir", mini, "--workdir", work,
                    "--no-energy"]) == 0
    report = json.loads((work / "chnsenti" / "report.json").read_text())
    scratch = work / "teacher-zh-tiny"
    assert report["teacher"] == str(scratch)
    assert (scratch / "tokenizer" / "vocab.txt").exists()
    assert json.loads((scratch / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    snn = json.loads((work / "chnsenti" / "snn" / "config.json").read_text())
    assert snn["model_type"] == "spikebert" and snn["vocab_size"] == json.loads((scratch / "config.json").read_text())["vocab_size"]
    assert json.loads((scratch / "config.json").read_text())["hidden_size"] == 64  # the preset's scratch shape
    assert set(report["stages"]) == {"teacher_pretrain", "teacher", "stage1", "stage2"}
    assert report["stages"]["teacher_pretrain"]["heldout_mlm_loss"] > 0
    # the task's train texts (never dev) join the corpus; waimai is not in this data folder
    sources = json.loads((scratch / "metrics.json").read_text())["sources"]
    assert sources["task_train_texts"] == {"chnsenti": 64}
