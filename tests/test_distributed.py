"""Issue 7: the same training on 2 CPU processes (accelerate launch, gloo) and on 1 process."""

import json
import shutil
import socket
import subprocess

import pytest

from conftest import TINY_SHAPE

TOLERANCE = 2e-3  # relative, on the logged loss after 6 steps (float sums in another order)


def free_port() -> int:
    """A TCP port the OS says is free now (bound to port 0, then released for the launcher)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(n: int, out, data_dir, teacher) -> dict:
    accelerate = shutil.which("accelerate")
    assert accelerate, "accelerate's launcher is not on PATH"
    cmd = [accelerate, "launch", "--cpu", "--num_processes", str(n), "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()), "-m", "spikebert.cli",
           "distill", "task", "--task", "sst2", "--data-dir", str(data_dir), "--teacher", str(teacher),
           "--max-steps", "6", "--batch-size", "16", "--augment", "0", "--max-length", "48",
           "--output", str(out), *TINY_SHAPE]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return {"losses": [r["loss"] for r in rows if "loss" in r], "dev": [r for r in rows if "dev_accuracy" in r],
            "metrics": json.loads((out / "metrics.json").read_text())}


@pytest.mark.slow
def test_two_processes_match_one(tiny_teacher, mini_sst2_dir, tmp_path):
    one = launch(1, tmp_path / "p1", mini_sst2_dir, tiny_teacher)
    two = launch(2, tmp_path / "p2", mini_sst2_dir, tiny_teacher)
    assert len(one["losses"]) == len(two["losses"]) == 6
    for a, b in zip(one["losses"], two["losses"]):
        assert abs(a - b) <= TOLERANCE * abs(a), (one["losses"], two["losses"])
    # dev accuracy is over the whole dev set (48 sentences), not one process's shard
    assert two["metrics"]["dev_examples"] == 48
    assert abs(two["metrics"]["dev_accuracy"] - one["metrics"]["dev_accuracy"]) <= 1 / 48
    # checkpoints and logs are written once (the checkpoints of steps 4 and 6: the newest two are kept)
    assert len(list((tmp_path / "p2" / "checkpoints").glob("step-*"))) == 2
    # 64 sentences / 16 = 4 steps an epoch: evaluations at step 4 (epoch end) and 6 (the end), each once
    assert [r["step"] for r in two["dev"]] == [r["step"] for r in one["dev"]] == [4, 6]
