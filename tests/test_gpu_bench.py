"""benchmarks/gpu_bench.py runs end to end on the CPU at its tiny shape (real SST-2 batches, the
trainer's stage-1 and stage-2 steps included) and writes the figures it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_bench_tiny_on_cpu(tmp_path, data_dir):
    out = tmp_path / "bench.json"
    env = {**os.environ, "SPIKEBERT_DATA": str(data_dir), "SPIKEBERT_CORPORA": str(data_dir.parent / "corpora"),
           "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_bench.py"), "--device", "cpu", "--tiny",
                          "--steps", "2", "--warmup", "1", "--precisions", "fp32", "--backends", "eager",
                          "--out", str(out), "--profile", str(tmp_path / "profile")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert [m["shape"] for m in r["models"]] == ["tiny", "tiny-sst2"]
    for m in r["models"]:
        assert "error" not in m, m
        for mode in ("train", "infer"):
            assert m[mode]["ms"] > 0 and m[mode]["tokens_per_s"] > 0 and m[mode]["peak_gib"] is None
    assert r["models"][1]["length"] == "real"
    assert [s["stage"] for s in r["stages"]] == ["stage1 (teacher live)", "stage2 (cached teacher)",
                                                 "stage2 (teacher live)"]
    for s in r["stages"]:
        assert s["step"]["ms"] > 0 and s["bare_step"]["ms"] > 0
        assert s["step_over_bare"] == round(s["step"]["ms"] / s["bare_step"]["ms"], 3)
    assert "tiny-sst2" in res.stdout and "stage2 (cached teacher)" in res.stdout  # the table
    # the profile: where a step's time goes, by operator, slowest first (which operators make the top
    # depends on the machine: at this shape the optimiser's element-wise work can push the matmuls out)
    p = r["profile"]
    assert p["sorted_by"] == "self_cpu_time_total" and p["ms_per_step"] > 0
    assert 0 < sum(op["share"] for op in p["top"]) <= 1 and all(op["calls"] > 0 for op in p["top"])
    times = [op["ms_per_step"] for op in p["top"]]
    assert times == sorted(times, reverse=True)
    # the trace holds the whole step: the matmuls and the spiking neuron's own autograd, both ways
    names = {e.get("name") for e in json.loads((tmp_path / "profile" / "trace.json").read_text())["traceEvents"]}
    assert {"aten::addmm", "MultiStepLIF", "MultiStepLIFBackward"} <= names
    assert "Self CPU" in (tmp_path / "profile" / "ops.txt").read_text()


def test_gpu_bench_refuses_a_missing_official_checkout(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_bench.py"), "--device", "cpu", "--tiny",
                          "--official", str(tmp_path / "nowhere")], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert res.returncode != 0 and "error:" in res.stderr and "new_spikformer.py" in res.stderr


def test_graphs_variant_pads_real_batches_to_few_shapes(monkeypatch):
    """The CUDA-graphs variant records one graph per input shape: real batches are padded to a
    multiple of GRAPH_PAD (the padding masked), and its blocks compile in reduce-overhead mode."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "benchmarks" / "gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.delenv("SPIKEBERT_NEURON_BACKEND", raising=False)
    assert bench.set_backend("graphs") == "reduce-overhead" and os.environ["SPIKEBERT_NEURON_BACKEND"] == "compile"
    assert bench.set_backend("eager") is None
    real = [{"input_ids": torch.ones(2, n, dtype=torch.long), "attention_mask": torch.ones(2, n, dtype=torch.long),
             "labels": torch.zeros(2, dtype=torch.long)} for n in (5, 16, 17)]
    shape = dict(bench.TINY)
    padded = bench.batches_for(shape, torch.device("cpu"), 3, real, None, bench.GRAPH_PAD)
    assert [b[0].shape[1] for b in padded] == [16, 16, 32]
    assert [int(b[1].sum()) for b in padded] == [10, 32, 34] and [b[3][0].shape[1] for b in padded] == [16, 16, 32]
    assert [b[0].shape[1] for b in bench.batches_for(shape, torch.device("cpu"), 3, real, None)] == [5, 16, 17]
