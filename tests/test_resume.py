"""Stage 2 survives a SIGKILL: a run killed at a seeded moment and then resumed ends exactly like a
run never stopped. Also: a corrupted checkpoint, a NaN loss and an output folder that cannot be
written each end with one clear error.

Checkpoints are written every ``--save-every`` steps and at every epoch end: with 32 examples in
batches of 8 an epoch is 4 steps, and ``--save-every 3`` makes the 12-step run checkpoint at steps
3, 4, 6, 8, 9 and 12 (and log a line every step).

How the kill cannot lose a race: run B is the real command line (``spikebert distill task``) in a
subprocess, started through a few lines of test code that, before calling the CLI's ``main``, wrap
one trainer function so that the process stops itself with SIGSTOP at the kill moment. The parent
waits until B is stopped (its state in ``/proc``), then kills it with SIGKILL: B cannot finish, or
go one instruction further, before the kill, however slow or loaded the machine. The moment is
drawn from every moment there is, with a seeded generator (``SPIKEBERT_TEST_KILL_SEED``, default 3):

- ``log line N``: just after the log line of step N (before step N's checkpoint, if it has one):
  the log holds lines the resume must drop, and the resume may start mid-epoch or from nothing;
- ``checkpoint N``: just after the checkpoint of step N is complete;
- ``checkpoint weights N``: while the checkpoint of step N is being written (its weights are in a
  temporary folder, ``latest`` still names the one before).

The default seed kills after the log line of step 8: the resume starts from the checkpoint of step
6, in the middle of the second epoch, and drops the lines of steps 7 and 8.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import CLI, TINY_SHAPE, assert_one_error_line, run_cli

LIMIT, BATCH, TOTAL, SAVE_EVERY = 32, 8, 12, 3
STEPS_PER_EPOCH = LIMIT // BATCH
CHECKPOINT_STEPS = sorted(s for s in range(1, TOTAL + 1) if s % SAVE_EVERY == 0 or s % STEPS_PER_EPOCH == 0)
STAGE2 = ["distill", "task", "--task", "sst2", "--limit", str(LIMIT), "--batch-size", str(BATCH),
          "--max-steps", str(TOTAL), "--epochs", str(TOTAL // STEPS_PER_EPOCH), "--save-every", str(SAVE_EVERY),
          "--augment", "0", "--max-length", "48", *TINY_SHAPE]
TIMEOUT = 600
KILL_SEED = int(os.environ.get("SPIKEBERT_TEST_KILL_SEED", "3"))


def kill_moments() -> list[tuple[str, int, int]]:
    """Every moment B can be killed at: (what, step, the step a resume starts from)."""
    before = lambda s: max([c for c in CHECKPOINT_STEPS if c < s], default=0)  # noqa: E731
    return ([("log line", s, before(s)) for s in range(1, TOTAL + 1)]
            + [("checkpoint", c, c) for c in CHECKPOINT_STEPS if c < TOTAL]
            + [("checkpoint weights", c, before(c)) for c in CHECKPOINT_STEPS])


KILL_AT = random.Random(KILL_SEED).choice(kill_moments())

# the command line, stopping itself (SIGSTOP) at the moment given as its first argument
STOPPING_CLI = [sys.executable, "-c", r"""
import os, signal, sys
from pathlib import Path
from spikebert.training import checkpoint, trainer

what, at = sys.argv[1].rsplit(" ", 1)
at = int(at)

def freeze():
    os.kill(os.getpid(), signal.SIGSTOP)  # the test kills the process while it is stopped here

def after(owner, name, stop_if):
    real = getattr(owner, name)
    def wrapper(*args, **kwargs):
        out = real(*args, **kwargs)
        if stop_if(*args, **kwargs):
            freeze()
        return out
    setattr(owner, name, wrapper)

if what == "log line":
    after(trainer.JsonlLog, "write", lambda log, **record: "loss" in record and record["step"] == at)
elif what == "checkpoint":
    after(trainer, "save_checkpoint", lambda folder, step, *rest, **kw: step == at)
elif what == "checkpoint weights":
    after(checkpoint, "save_state_dict", lambda state, path: Path(path).parent.name.startswith(f".step-{at:07d}."))
else:
    raise SystemExit(f"unknown kill moment {sys.argv[1]!r}")
from spikebert.cli import main
sys.exit(main(sys.argv[2:]))
"""]


def _env(data_dir):
    # one thread a process: the runs are deterministic and two of them share 2 cores fairly
    return {**os.environ, "SPIKEBERT_DATA": str(data_dir), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def _start(cmd, env, log: Path):
    fh = open(log, "w")
    return subprocess.Popen([str(a) for a in cmd], stdout=fh, stderr=subprocess.STDOUT, env=env), fh


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


def _wait_until_stopped(proc, log: Path):
    """Block until ``proc`` has stopped itself (state T in /proc); fail if it ended instead."""
    deadline = time.time() + TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"run B ended ({proc.returncode}) without reaching the kill moment {KILL_AT[:2]} "
                        f"(did the trainer function the test wraps move?):\n{log.read_text()[-3000:]}")
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        if time.time() > deadline:
            pytest.fail(f"run B did not reach the kill moment {KILL_AT[:2]} in {TIMEOUT} s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def runs(tiny_teacher, mini_sst2_dir, tmp_path_factory):
    """Run A uninterrupted; run B killed with SIGKILL at the seeded moment, then resumed with
    --resume. Both as separate processes, A and B side by side, on the first SST-2 sentences (the
    mini data folder: 48 dev sentences keep the evaluation at each epoch end short)."""
    root = tmp_path_factory.mktemp("resume")
    env = _env(mini_sst2_dir)
    a_dir, b_dir = root / "A", root / "B"
    base = STAGE2 + ["--teacher", str(tiny_teacher)]
    what, at, _ = KILL_AT
    print(f"kill moment (seed {KILL_SEED}): {what} {at}")
    a, a_log = _start(CLI + base + ["--output", a_dir], env, root / "A.log")
    b, b_log = _start(STOPPING_CLI + [f"{what} {at}"] + base + ["--output", b_dir], env, root / "B.log")
    info = {"a_dir": a_dir, "b_dir": b_dir, "root": root}
    try:
        _wait_until_stopped(b, root / "B.log")
        os.kill(b.pid, signal.SIGKILL)
        b.wait()
        b_log.close()
        info["b_rc"] = b.returncode
        # the folder as the kill left it (the resumed run replaces its checkpoints)
        snapshot = root / "B-at-kill"
        shutil.copytree(b_dir, snapshot)
        info["at_kill"] = snapshot
        resumed = subprocess.run(CLI + [str(x) for x in base + ["--output", b_dir, "--resume"]], env=env,
                                 capture_output=True, text=True, timeout=TIMEOUT)
        info["resumed"] = resumed
        a.wait(timeout=TIMEOUT)
        a_log.close()
        info["a_rc"], info["a_log"] = a.returncode, (root / "A.log").read_text()
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()
    return info


def test_killed_run_leaves_a_complete_checkpoint(runs):
    what, at, resume_from = KILL_AT
    assert runs["b_rc"] == -signal.SIGKILL, f"run B ended with {runs['b_rc']}, not by the SIGKILL"
    ckpt, root = _latest(runs["at_kill"]), runs["at_kill"] / "checkpoints"
    if resume_from == 0:
        assert ckpt is None and not list(root.glob("step-*")), f"{what} {at}: a checkpoint before the first one?"
    else:
        assert ckpt == root / f"step-{resume_from:07d}", f"{what} {at}: checkpoints/latest names {ckpt}"
        # the newest two complete checkpoints stay (--keep-checkpoints 2: one to fall back to); older
        # ones are removed once latest moves on
        kept = [f"step-{c:07d}" for c in CHECKPOINT_STEPS if c <= resume_from][-2:]
        assert sorted(p.name for p in root.glob("step-*") if p.is_dir()) == kept
        # the files the latest marker names are whole (this reads them the way --resume does)
        final = _tensors(runs["a_dir"] / "checkpoints" / f"step-{TOTAL:07d}" / "model.safetensors")
        weights = _tensors(ckpt / "model.safetensors")
        assert weights.keys() == final.keys() and all(torch.isfinite(t).all() for t in weights.values())
        assert torch.load(ckpt / "trainer_state.pt", weights_only=True)["step"] == resume_from
    if what == "checkpoint weights":  # the checkpoint being written: weights in a temporary folder only
        partial = list(root.glob(f".step-{at:07d}.*"))
        assert len(partial) == 1 and [f.name for f in partial[0].iterdir()] == ["model.safetensors"], partial
    if what == "log line":  # the log goes past the checkpoint: the resume must drop those lines
        assert max(r["step"] for r in _records(runs["at_kill"]) if "loss" in r) == at > resume_from


def test_resumed_run_equals_uninterrupted_run(runs):
    resumed, a_dir, b_dir = runs["resumed"], runs["a_dir"], runs["b_dir"]
    assert runs["a_rc"] == 0, runs["a_log"][-3000:]
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    resume_from = KILL_AT[2]
    said = f"(step {resume_from} of {TOTAL})" if resume_from else "starting from the beginning"
    assert said in resumed.stdout, resumed.stdout[-2000:]

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
def test_corrupted_checkpoints_are_a_clear_error(runs, tiny_teacher, tmp_path, mini_sst2_dir, capsys, damage):
    """Every checkpoint kept damaged, and without their manifests (as an older version wrote them):
    the loaders' own checks catch it, and with nothing to fall back to it is one clear error.
    (Falling back to the one before: tests/test_faults.py.)"""
    out = tmp_path / "out"
    shutil.copytree(runs["a_dir"], out)
    (out / "metrics.json").unlink()  # an unfinished run
    ckpt = _latest(out)
    for each in (out / "checkpoints").glob("step-*"):
        (each / "manifest.json").unlink()
        target = each / ("model.safetensors" if "weights" in damage else "trainer_state.pt")
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
    assert_one_error_line(capsys.readouterr().err, str(ckpt), "delete")


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
    # the checkpoint kept is the state before the blow-up: every weight finite
    assert all(torch.isfinite(t).all() for t in _tensors(ckpt / "model.safetensors").values())
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
