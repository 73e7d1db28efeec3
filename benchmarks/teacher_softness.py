"""How soft a teacher's stage-2 targets are (not a test: it prints figures).

Stage 2's KL term passes the teacher's soft labels to the student; a teacher that is almost
certain on the texts the student trains on passes little beyond the hard labels. This reads the
logits of the teacher-output cache stage 2 built (``--cache-dir``, or a run folder with its own
``teacher-outputs/``), verified against its manifest, and prints per cached part: the texts, the
teacher's accuracy on them (the part holding the task's training split only), the mean
probability of its top class, the mean entropy of its softmax at τ = 1 and 2, and the mean gap
between its two highest logits.

    SPIKEBERT_DATA=../shared/datasets python benchmarks/teacher_softness.py --task sst2 \\
        runs/sst2/teacher-outputs runs/sst2/teacher-outputs-mpnet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from spikebert.data.tasks import load_data
from spikebert.distill.teacher_cache import open_part
from spikebert.training.manifest import verify


def softmax(z: np.ndarray, tau: float) -> np.ndarray:
    z = z / tau
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def row(logits: np.ndarray, labels: np.ndarray | None) -> dict:
    z = logits.astype(np.float64)
    out = {"texts": len(z), "accuracy": float((z.argmax(1) == labels).mean()) if labels is not None else None}
    for tau in (1.0, 2.0):
        p = softmax(z, tau)
        out[f"entropy_tau{tau:g}"] = float(-(p * np.log(np.clip(p, 1e-300, None))).sum(1).mean())
        if tau == 1.0:
            out["mean_top_prob"] = float(p.max(1).mean())
    top2 = np.sort(z, axis=1)[:, -2:]
    out["mean_top2_logit_gap"] = float((top2[:, 1] - top2[:, 0]).mean())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True, help="the task whose training split the cache was built on")
    ap.add_argument("caches", nargs="+", help="stage 2's --cache-dir, or a stage-2 output folder")
    a = ap.parse_args()
    train = np.array([e.label for e in load_data(a.task, "train").examples])
    print(f"{'teacher':<40} {'part':<10} {'texts':>6} {'acc':>7} {'top p':>6} {'H(τ=1)':>7} {'H(τ=2)':>7} {'gap':>5}")
    for cache in a.caches:
        parts = sorted(p for p in (Path(cache) / "teacher-outputs").glob("*")
                       if p.is_dir() and not p.name.startswith((".", "attn-")))
        if not parts:
            raise SystemExit(f"{cache}: no teacher-output parts in {Path(cache) / 'teacher-outputs'}")
        for folder in parts:
            problems = verify(folder)
            part = open_part(folder)
            if problems or part is None:
                print(f"{folder}: skipped, does not verify ({'; '.join(problems) or 'incomplete'})")
                continue
            meta = json.loads((folder / "meta.json").read_text())
            is_train = len(part.logits) == len(train)
            r = row(part.logits, train if is_train else None)
            acc = f"{r['accuracy'] * 100:6.2f}%" if is_train else "      -"
            print(f"{Path(meta['teacher']['folder']).name:<40} {'train' if is_train else 'augmented':<10} "
                  f"{r['texts']:>6} {acc} {r['mean_top_prob']:>6.3f} {r['entropy_tau1']:>7.3f} "
                  f"{r['entropy_tau2']:>7.3f} {r['mean_top2_logit_gap']:>5.2f}")


if __name__ == "__main__":
    main()
