"""Stage 2 survives a SIGKILL: a run killed at a random moment after a checkpoint and then
resumed ends exactly like a run never stopped. Also: a corrupted checkpoint, a NaN loss and an
output folder that cannot be written each end with one clear error.

Checkpoints are written every ``--save-every`` steps and at every epoch end: with 32 examples in
batches of 8 an epoch is 4 steps, and ``--save-every 3`` makes the 12-step run checkpoint at steps
3, 4, 6, 8, 9 and 12. The kill comes at a random moment after the checkpoint of step 6 exists: the
resume then starts in the middle of the second epoch (batches of a later epoch skipped), or from
step 8 if the kill lands after that checkpoint, possibly while it is being written."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import CLI, TINY_SHAPE, assert_one_error_line, run_cli

LIMIT, BATCH, TOTAL, SAVE_EVERY = 32, 8, 12, 3
STEPS_PER_EPOCH = LIMIT // BATCH
CHECKPOINT_STEPS = {s for s in range(1, TOTAL + 1) if s % SAVE_EVERY == 0 or s % STEPS_PER_EPOCH == 0}
KILL_AFTER = 6  # mid-epoch, second epoch
STAGE2 = ["distill", "task", "--task", "sst2", "--limit", str(LIMIT), "--batch-size", str(BATCH),
          "--max-steps", str(TOTAL), "--epochs", str(TOTAL // STEPS_PER_EPOCH), "--save-every", str(SAVE_EVERY),
          "--augment", "0", "--max-length", "48", *TINY_SHAPE]
TIMEOUT = 600


def _env(data_dir):
    # one thread a process: the runs are deterministic and two of them share 2 cores fairly
    return {**os.environ, "SPIKEBERT_DATA": str(data_dir), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def _start(args, env, log: Path):
    fh = open(log, "w")
    return subprocess.Popen(CLI + [str(a) for a in args], stdout=fh, stderr=subprocess.STDOUT, env=env), fh


def _step_of(ckpt: Path) -> int:
    return int(ckpt.name.split("-")[1])


def _latest(folder: Path) -> Path | None:
    marker = folder / "checkpoints" / "latest"
    if not marker.exists():
        return None
    return folder / "checkpoints" / marker.read_text().strip()


def _tensors(path: Path) -> dict:
    return load_file(str(path))


def _max_diff(a: dict, b: dict) -> str:
    if a.keys() != b.keys():
        return f"different tensors: {sorted(a.keys() ^ b.keys())[:5]}"
    worst = max(((a[k].float() - b[k].float()).abs().max().item(), k) for k in a)
    return f"max abs difference {worst[0]:.3g} in {worst[1]}"


def _records(folder: Path) -> list[dict]:
    return [json.loads(ln) for ln in (folder / "log.jsonl").read_text().splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def runs(tiny_teacher, mini_sst2_dir, tmp_path_factory):
    """Run A uninterrupted; run B killed with SIGKILL at a random moment after its step-6 checkpoint,
    then resumed with --resume. Both as separate processes, A and B side by side, on the first SST-2
    sentences (the mini data folder: 48 dev sentences keep the evaluation at each epoch end short)."""
    root = tmp_path_factory.mktemp("resume")
    env = _env(mini_sst2_dir)
    a_dir, b_dir = root / "A", root / "B"
    base = STAGE2 + ["--teacher", str(tiny_teacher)]
    a, a_log = _start(base + ["--output", a_dir], env, root / "A.log")
    b, b_log = _start(base + ["--output", b_dir], env, root / "B.log")
    info = {"a_dir": a_dir, "b_dir": b_dir, "root": root}
    t0, timing = time.time(), {}
    info["timing"] = timing
    try:
        deadline = time.time() + TIMEOUT
        while (latest := _latest(b_dir)) is None or _step_of(latest) < KILL_AFTER:
            if b.poll() is not None:
                pytest.fail(f"run B ended ({b.returncode}) before its checkpoint of step {KILL_AFTER}:\n"
                            f"{(root / 'B.log').read_text()[-3000:]}")
            if time.time() > deadline:
                pytest.fail(f"run B wrote no checkpoint of step {KILL_AFTER} in time")
            time.sleep(0.02)
        timing["checkpoint to kill after"] = time.time() - t0
        # the test process's `random` is seeded by the training it ran in-process: a fresh generator
        delay = float(os.environ.get("SPIKEBERT_TEST_KILL_DELAY", random.Random().uniform(0.0, 1.0)))
        info["delay"] = delay
        time.sleep(delay)
        still_running = b.poll() is None
        os.kill(b.pid, signal.SIGKILL)
        b.wait()
        info["killed_running"] = still_running
        # the folder as the kill left it (the resumed run replaces its checkpoints)
        snapshot = root / "B-at-kill"
        shutil.copytree(b_dir, snapshot)
        info["at_kill"] = snapshot
        b_log.close()
        timing["killed"] = time.time() - t0
        print(f"run B killed {delay:.2f}s after its checkpoint of step {KILL_AFTER}; latest then: {_latest(snapshot)}")

        resumed = subprocess.run(CLI + [str(x) for x in base + ["--output", b_dir, "--resume"]], env=env,
                                 capture_output=True, text=True, timeout=TIMEOUT)
        info["resumed"] = resumed
        timing["resumed run done"] = time.time() - t0
        a.wait(timeout=TIMEOUT)
        a_log.close()
        timing["run A done"] = time.time() - t0
        info["a_rc"], info["a_log"] = a.returncode, (root / "A.log").read_text()
        print("timing (s):", {k: round(v, 1) for k, v in timing.items()})
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()
    return info


def test_killed_run_leaves_a_complete_checkpoint(runs):
    assert runs["killed_running"], (f"run B had finished before the kill ({runs['delay']:.2f}s after its "
                                    f"checkpoint of step {KILL_AFTER}): the test did not interrupt anything")
    ckpt = _latest(runs["at_kill"])
    assert ckpt is not None and ckpt.is_dir(), f"checkpoints/latest names {ckpt}, which does not exist"
    assert _step_of(ckpt) in CHECKPOINT_STEPS and KILL_AFTER <= _step_of(ckpt) < TOTAL, ckpt
    # no other complete checkpoint is left behind (older ones are removed once latest moves on)
    done = sorted(p.name for p in ckpt.parent.glob("step-*") if p.is_dir())
    assert done[-1] == ckpt.name, done
    assert (ckpt / "model.safetensors").is_file() and (ckpt / "trainer_state.pt").is_file()
    # the files the latest marker names are whole (this reads them the way --resume does)
    assert _tensors(ckpt / "model.safetensors")
    state = torch.load(ckpt / "trainer_state.pt", weights_only=True)
    assert state["step"] == _step_of(ckpt)


def test_resumed_run_equals_uninterrupted_run(runs):
    resumed, a_dir, b_dir = runs["resumed"], runs["a_dir"], runs["b_dir"]
    assert runs["a_rc"] == 0, runs["a_log"][-3000:]
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout, resumed.stdout[-2000:]

    ma = json.loads((a_dir / "metrics.json").read_text())
    mb = json.loads((b_dir / "metrics.json").read_text())
    for key in ("dev_accuracy", "dev_macro_f1", "best_step", "steps", "stopped_by", "history", "train_examples"):
        assert mb[key] == ma[key], f"metrics.json {key}: resumed {mb[key]!r}, uninterrupted {ma[key]!r}"
    assert ma["steps"] == TOTAL

    # the published (best) model and the last weights of training
    for rel in ("model.safetensors", f"checkpoints/step-{TOTAL:07d}/model.safetensors"):
        ta, tb = _tensors(a_dir / rel), _tensors(b_dir / rel)
        assert ta.keys() == tb.keys()
        assert all(torch.equal(ta[k], tb[k]) for k in ta), f"{rel} differs: {_max_diff(ta, tb)}"
    assert json.loads((b_dir / "config.json").read_text()) == json.loads((a_dir / "config.json").read_text())

    # the metrics log holds every record once, as the uninterrupted run wrote it
    ra, rb = _records(a_dir), _records(b_dir)
    assert rb == ra


@pytest.mark.parametrize("metrics_written", [True, False])
def test_resume_after_the_last_checkpoint_keeps_the_result(runs, tiny_teacher, tmp_path, mini_sst2_dir,
                                                           metrics_written):
    """A kill after the last checkpoint but before metrics.json (`spikebert run` then resumes the
    stage), or --resume on a finished run: the result must be the one the run had."""
    done = tmp_path / "done"
    shutil.copytree(runs["a_dir"], done)
    before = json.loads((done / "metrics.json").read_text())
    if not metrics_written:
        (done / "metrics.json").unlink()
    weights = (done / "model.safetensors").read_bytes()
    assert run_cli(STAGE2 + ["--teacher", tiny_teacher, "--data-dir", mini_sst2_dir, "--output", done,
                             "--resume"]) == 0
    after = json.loads((done / "metrics.json").read_text())
    for key in ("dev_accuracy", "dev_macro_f1", "best_step", "steps", "history"):
        assert after[key] == before[key], f"metrics.json {key}: {before[key]!r} became {after[key]!r}"
    assert (done / "model.safetensors").read_bytes() == weights


@pytest.mark.parametrize("damage", ["truncate weights", "garbage weights", "truncate trainer state",
                                    "delete trainer state"])
def test_corrupted_checkpoint_is_a_clear_error(runs, tiny_teacher, tmp_path, mini_sst2_dir, capsys, damage):
    out = tmp_path / "out"
    shutil.copytree(runs["a_dir"], out)
    (out / "metrics.json").unlink()  # an unfinished run
    ckpt = _latest(out)
    target = ckpt / ("model.safetensors" if "weights" in damage else "trainer_state.pt")
    if damage.startswith("truncate"):
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif damage.startswith("garbage"):
        target.write_bytes(os.urandom(4096))
    else:
        target.unlink()
    capsys.readouterr()
    code = run_cli(STAGE2 + ["--teacher", tiny_teacher, "--data-dir", mini_sst2_dir, "--output", out, "--resume"])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err, str(ckpt))


def test_nan_loss_stops_naming_the_step_and_keeps_the_checkpoint(tiny_teacher, tmp_path, mini_sst2_dir, capsys):
    """One example batch an epoch, so a checkpoint every step; --lr 1e30 blows the weights up after
    the first update."""
    out = tmp_path / "nan"
    code = run_cli(["distill", "task", "--task", "sst2", "--teacher", tiny_teacher, "--data-dir", mini_sst2_dir,
                    "--limit", "8", "--batch-size", "8", "--max-steps", "6", "--epochs", "6", "--lr", "1e30",
                    "--augment", "0", "--max-length", "48", *TINY_SHAPE, "--output", out])
    assert code == 2
    line = assert_one_error_line(capsys.readouterr().err, "step")
    m = re.search(r"\b(nan|inf|-inf)\b.*at step (\d+)", line)
    assert m, f"the error does not say the loss became nan/inf at a step: {line}"
    step = int(m.group(2))
    assert step >= 2, line
    ckpt = _latest(out)
    assert ckpt is not None and _step_of(ckpt) == step - 1, f"latest checkpoint {ckpt} after a NaN at step {step}"
    assert str(ckpt) in line, f"the error does not name the last checkpoint {ckpt}: {line}"
    assert _tensors(ckpt / "model.safetensors")
    assert torch.load(ckpt / "trainer_state.pt", weights_only=True)["step"] == step - 1
    assert not (out / "metrics.json").exists(), "a stopped run must not look finished (metrics.json)"


@pytest.mark.parametrize("augment", ["0", "1"])
@pytest.mark.parametrize("where", ["under a file", "is a file"])
def test_unwritable_output_is_a_clear_error_before_training(tiny_teacher, tmp_path, mini_sst2_dir, capsys,
                                                            augment, where):
    """Tests run as root, where chmod does not stop writes: the output is a path through a file.
    With --augment the augmented texts are cached in the output folder, so it must be checked first."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "sub" if where == "under a file" else blocker
    code = run_cli(["distill", "task", "--task", "sst2", "--teacher", tiny_teacher, "--data-dir", mini_sst2_dir,
                    "--limit", "16", "--batch-size", "8", "--max-steps", "2", "--augment", augment,
                    "--max-length", "48", *TINY_SHAPE, "--output", out])
    assert code == 2
    captured = capsys.readouterr()
    line = assert_one_error_line(captured.err, f"{out}:")
    assert re.search(r"writ|folder|director", line.split(f"{out}:", 1)[1]), line
    assert "stage 2:" not in captured.out  # nothing was trained
    assert blocker.read_text() == "not a folder"


# ---------------------------------------------------------------------------------------------
# The training loop itself (in-process, a linear model): which batches every step sees


class _Stop(Exception):
    pass


def _fit(out, record, stop_at=None, resume=False):
    """fit() on 32 one-token texts in batches of 8 (4 steps an epoch), 12 steps, a checkpoint every 3;
    ``record`` gets the example indices of every batch; ``stop_at``: raise before that step (a kill)."""
    from spikebert.data.batching import Encoded
    from spikebert.training.trainer import TrainArgs, fit

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 2)
    data = Encoded([[i + 1] * (1 + i % 5) for i in range(LIMIT)], [i % 2 for i in range(LIMIT)])

    def loss_fn(m, batch, step, epoch):
        if stop_at is not None and len(record) + 1 == stop_at:
            raise _Stop
        record.append(batch["index"].tolist())
        x = batch["input_ids"].float().mean(dim=1, keepdim=True)
        return torch.nn.functional.cross_entropy(m(x), batch["labels"]), {}

    args = TrainArgs(output=str(out), epochs=3.0, max_steps=TOTAL, batch_size=BATCH, lr=0.05, warmup=0.0,
                     save_every=SAVE_EVERY, resume=resume)
    fit(model, data, args, loss_fn)
    return model


def test_every_epoch_has_its_own_batch_order(tmp_path):
    record = []
    _fit(tmp_path / "run", record)
    epochs = [record[i:i + STEPS_PER_EPOCH] for i in range(0, TOTAL, STEPS_PER_EPOCH)]
    for batches in epochs:  # every epoch sees every example once
        assert sorted(i for b in batches for i in b) == list(range(LIMIT))
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2], (
        "the batches are the same in every epoch (the sampler's epoch does not reach the data loader):\n"
        + "\n".join(str(e) for e in epochs))


@pytest.mark.parametrize("kill_before", [5, 8, 11])  # resume from steps 4, 6 and 9
def test_resume_sees_the_batches_of_an_uninterrupted_run(tmp_path, kill_before):
    full = []
    ref = _fit(tmp_path / "full", full)
    seen = []
    with pytest.raises(_Stop):
        _fit(tmp_path / "cut", seen, stop_at=kill_before)
    ckpt = _step_of(_latest(tmp_path / "cut"))
    resumed = []
    model = _fit(tmp_path / "cut", resumed, resume=True)
    assert seen == full[: kill_before - 1]
    assert resumed == full[ckpt:], (f"resumed from step {ckpt}: batches {resumed[:3]}..., "
                                    f"an uninterrupted run: {full[ckpt:ckpt + 3]}...")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
