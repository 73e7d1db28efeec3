"""Issue 7: the same training on 2 CPU processes (torchrun, gloo) and on 1 process."""

import json
import socket
import subprocess
import sys

import pytest
import torch

from conftest import SHARED, TINY_SHAPE
from spikebert.training.checkpoint import check_output_dir

# Relative tolerances. Per-example terms (CE, KL) of one batch agree up to float order. Token-averaged
# terms (the feature MSE) are averaged over each process's half and the halves weighted by rows, so
# they weigh the batch's tokens a little differently from one process (measured at step 1: 1.1293
# on 2 processes against 1.1248 on one, +0.4 %), and the weights drift apart from step 2 on (the
# total loss at most 2.6 % apart over the 6 steps, measured on this machine).
SAME_BATCH = 1e-5
TOKEN_AVERAGED = 1e-2
DRIFT = 5e-2


def free_port() -> int:
    """A TCP port the OS says is free now (bound to port 0, then released for the launcher)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stage2(data_dir, teacher) -> list[str]:
    """The stage-2 command the 1-against-2-process comparison runs."""
    return ["distill", "task", "--task", "sst2", "--data-dir", str(data_dir), "--teacher", str(teacher),
            "--augment", "0", "--max-length", "48"]


def launch(n: int, out, command: list[str]) -> dict:
    """``command`` on ``n`` CPU processes: torchrun's (what docs/gpu-and-scale.md gives users;
    ``accelerate launch --cpu --num_processes N`` would start one process), or one plain process."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
                "--master_port", str(free_port())] if n > 1 else [sys.executable]
    cmd = [*launcher, "-m", "spikebert.cli", *command,
           "--max-steps", "6", "--batch-size", "16", "--output", str(out), *TINY_SHAPE]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return {"steps": [r for r in rows if "loss" in r], "losses": [r["loss"] for r in rows if "loss" in r],
            "dev": [r for r in rows if "dev_accuracy" in r],
            "metrics": json.loads((out / "metrics.json").read_text())}


@pytest.mark.slow
def test_two_processes_match_one(tiny_teacher, mini_sst2_dir, tmp_path):
    one = launch(1, tmp_path / "p1", stage2(mini_sst2_dir, tiny_teacher))
    two = launch(2, tmp_path / "p2", stage2(mini_sst2_dir, tiny_teacher))
    assert len(one["losses"]) == len(two["losses"]) == 6
    # step 1, the same weights and the same 16 sentences, split 8 + 8 over the processes
    first, second = one["steps"][0], two["steps"][0]
    for term in ("ce", "kl"):
        assert abs(first[term] - second[term]) <= SAME_BATCH * abs(first[term]), (term, first, second)
    assert abs(first["rep"] - second["rep"]) <= TOKEN_AVERAGED * first["rep"], (first, second)
    for a, b in zip(one["losses"], two["losses"]):
        assert abs(a - b) <= DRIFT * abs(a), (one["losses"], two["losses"])
    # dev accuracy is over the whole dev set (48 sentences), not one process's shard
    assert two["metrics"]["dev_examples"] == 48
    # two processes really ran as one group (each would otherwise train alone on the whole batch)
    assert (one["metrics"]["environment"]["processes"], two["metrics"]["environment"]["processes"]) == (1, 2)
    # the dev figures gathered from both shards are those of the saved model evaluated in one process
    res = subprocess.run([sys.executable, "-m", "spikebert.cli", "evaluate", "--model", str(tmp_path / "p2"),
                          "--task", "sst2", "--data-dir", str(mini_sst2_dir), "--max-length", "48", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    alone = json.loads(res.stdout)
    assert alone["n"] == 48
    assert (alone["accuracy"], alone["macro_f1"]) == pytest.approx(
        (two["metrics"]["dev_accuracy"], two["metrics"]["dev_macro_f1"]), abs=1e-9)
    # checkpoints and logs are written once (the checkpoints of steps 4 and 6: the newest two are kept)
    assert len(list((tmp_path / "p2" / "checkpoints").glob("step-*"))) == 2
    # 64 sentences / 16 = 4 steps an epoch: evaluations at step 4 (epoch end) and 6 (the end), each once
    assert [r["step"] for r in two["dev"]] == [r["step"] for r in one["dev"]] == [4, 6]


def test_output_probe_removes_only_its_own_file(tmp_path):
    """Every process of a run probes the output folder at once. With one shared probe name, one
    process removed the file another was about to remove, and that one stopped with "output
    folder is not writable" (a CI run on 2 processes). Each probe now removes only its own file:
    another process's probe in flight, under the old name or the new one, is left alone."""
    out = tmp_path / "run"
    out.mkdir()
    others = {out / ".write-test", out / ".write-test-other"}
    for f in others:
        f.write_bytes(b"ok")
    assert check_output_dir(out) == out
    assert set(out.iterdir()) == others


@pytest.mark.slow
def test_stage1_on_two_processes(tiny_teacher, tmp_path):
    """Stage 1's loss reads the blocks' features, never the final norm or the classifier: on
    several processes DistributedDataParallel stopped at step 2 ("parameters that were not used
    in producing loss"). It runs now, leaves those parameters as they were, and follows the
    one-process losses within DRIFT (the feature MSE is token-averaged: see the tolerances above)."""
    from safetensors.torch import load_file

    stage1 = ["distill", "pretrain", "--corpus", str(SHARED / "corpora" / "en" / "nlp-corpus.txt"), "--limit", "96",
              "--max-length", "32", "--teacher", str(tiny_teacher)]
    one = launch(1, tmp_path / "p1", stage1)
    two = launch(2, tmp_path / "p2", stage1)
    assert len(one["losses"]) == len(two["losses"]) == 6
    for a, b in zip(one["losses"], two["losses"]):
        assert abs(a - b) <= DRIFT * abs(a), (one["losses"], two["losses"])
    w1, w2 = load_file(tmp_path / "p1" / "model.safetensors"), load_file(tmp_path / "p2" / "model.safetensors")
    unused = [k for k in w1 if k.startswith(("classifier.", "spikebert.final_norm."))]
    assert len(unused) == 4
    for k in unused:
        assert torch.equal(w1[k], w2[k]), k
    assert torch.equal(w2["spikebert.final_norm.weight"], torch.ones_like(w2["spikebert.final_norm.weight"]))
    assert two["metrics"]["environment"]["processes"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train-direct", "rep0"])
def test_terms_that_leave_parameters_out_on_two_processes(tiny_teacher, mini_sst2_dir, tmp_path, command):
    """Direct training and stage 2 with ``--w-rep 0`` read no feature transform: on several
    processes they stopped at step 2 as stage 1 did, and run now."""
    cmd = (["train-direct", "--task", "sst2", "--data-dir", str(mini_sst2_dir), "--max-length", "48",
            "--tokenizer-from", str(tiny_teacher)] if command == "train-direct" else
           [*stage2(mini_sst2_dir, tiny_teacher), "--w-rep", "0"])
    two = launch(2, tmp_path / "p2", cmd)
    assert len(two["losses"]) == 6
    assert two["metrics"]["environment"]["processes"] == 2
