"""Fine-tune the default teacher on full SST-2 and print dev accuracy and wall time (not a test).

    SPIKEBERT_DATA=../shared/datasets python benchmarks/finetune_teacher.py [--output DIR] [--teacher PATH]

Runs `spikebert teacher finetune --task sst2` with its defaults (2 epochs, lr 5e-5, batch 32,
max length 128, best epoch on dev) and reads the figures back from metrics.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--output", default=None)
    a = ap.parse_args()
    from spikebert.cli import main as cli

    out = Path(a.output or tempfile.mkdtemp(prefix="teacher-bench-"))
    args = ["teacher", "finetune", "--task", a.task, "--output", str(out)]
    if a.teacher:
        args += ["--teacher", a.teacher]
    t0 = time.time()
    code = cli(args)
    wall = time.time() - t0
    if code:
        raise SystemExit(code)
    m = json.loads((out / "metrics.json").read_text())
    print(f"task {a.task}: dev accuracy {m['dev_accuracy'] * 100:.2f}%, macro-F1 {m['dev_macro_f1'] * 100:.2f}%, "
          f"best step {m['best_step']} of {m['steps']}, wall time {wall / 60:.1f} min (training {m['seconds'] / 60:.1f} min) "
          f"-> {out}")


if __name__ == "__main__":
    main()
