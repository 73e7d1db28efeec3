"""The results table is data: measured rows in ``docs/results.json``, rendered into README.md,
docs/results.md and the picture docs/accuracy-energy.png, never retyped.

    python benchmarks/results_table.py                       # rewrite the tables and the picture
    python benchmarks/results_table.py --check               # exit 1 when a file is out of date
    python benchmarks/results_table.py --collect runs/sst2/report.json --machine "2 CPU cores" \\
        [--command "spikebert run --task sst2"] [--name SST-2] [--paper 85.4] [--show-in-readme]

``--collect`` reads the ``report.json`` that ``spikebert run`` writes in a run's folder (accuracy
and seconds of every stage, the energy on both counting rules), turns it into a row and adds it to
the data file, replacing the row of the same task, flags and machine; then the tables are rewritten.
A table sits in a Markdown file between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``.
Run folders are seldom kept, so the data file holds every measured row with its command and machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "results.json"
README = ROOT / "README.md"
RESULTS_MD = ROOT / "docs" / "results.md"
PICTURE = ROOT / "docs" / "accuracy-energy.png"

# the row fields, in the order the data file keeps them; percentages are in percent, minutes in minutes
FIELDS = ("task", "name", "flags", "teacher", "teacher_dev", "student_dev", "paper", "energy_strict",
          "energy_paper", "minutes", "time_note", "machine", "command", "readme", "note")
# the paper's SpikeBERT (Table 1, test splits) per task; see docs/results.md for where they come from
# (as written there: a string keeps its digits)
PAPER = {"sst2": "85.4", "sst5": "46.11", "mr": "80.69", "subj": "93.00", "chnsenti": "86.36", "waimai": "89.66"}
NAMES = {"sst2": "SST-2", "sst5": "SST-5", "mr": "MR", "subj": "Subj", "chnsenti": "ChnSentiCorp",
         "waimai": "waimai_10k"}


def _percent(x, digits: int) -> float | None:
    """A fraction as a percentage rounded to ``digits`` (None stays None)."""
    return None if x is None else round(100 * x, digits)


def run_flags(report: dict) -> str:
    """The ``spikebert run`` flags beyond ``--task`` that made the run of ``report``: the shape
    fields that differ from its preset's, a penalty other than the default, a teacher given."""
    from spikebert.distill.config import LossWeights
    from spikebert.pipeline import PRESETS

    preset = report.get("preset", "cpu")
    flags = [] if preset == "cpu" else [f"--preset {preset}"]
    base = PRESETS[preset].shape.given() if preset in PRESETS else {}
    for key, value in (report.get("shape") or {}).items():
        if base.get(key) == value:
            continue
        flag = "--" + key.replace("_", "-")
        flags.append(flag if value is True else f"--no-{flag[2:]}" if value is False else f"{flag} {value}")
    weights = (report.get("distillation") or {}).get("weights") or {}
    for key in ("spikes", "energy"):
        if key in weights and weights[key] != getattr(LossWeights, key):
            flags.append(f"--w-{key} {weights[key]:g}")
    teacher_folder = Path(((report.get("stages") or {}).get("teacher") or {}).get("folder", "teacher")).name
    if teacher_folder.startswith("teacher-"):  # a teacher given by --teacher names its folder
        flags.append(f"--teacher {report['teacher']}")
    return " ".join(flags)


def row_from_report(report: dict, *, machine: str, command: str | None = None, name: str | None = None,
                    paper: str | None = None, readme: bool = False) -> dict:
    """A results row from a run's ``report.json``: dev accuracies of the teacher and the student,
    the energy on the strict rule and the paper's convention, the minutes of the stages this run
    made (reused ones are named in ``time_note``)."""
    task = report["task"]
    flags = run_flags(report)
    stages = report.get("stages") or {}
    made = [s.get("seconds") or 0 for s in stages.values() if not s.get("reused")]
    reused = [k for k, s in stages.items() if s.get("reused")]
    energy = report.get("energy") or {}
    return {
        "task": task, "name": name or NAMES.get(task, task), "flags": flags,
        "teacher": str(report.get("teacher", "")),
        "teacher_dev": _percent(report.get("teacher_dev_accuracy"), 2),
        "student_dev": _percent(report.get("snn_dev_accuracy"), 2),
        "paper": paper if paper is not None else PAPER.get(task),
        "energy_strict": _percent(energy.get("energy_ratio"), 1),
        "energy_paper": _percent(energy.get("paper_convention_ratio"), 1),
        "minutes": round(sum(made) / 60, 1),
        "time_note": f"reuses {', '.join(reused)}" if reused else "",
        "machine": machine,
        "command": command or " ".join(p for p in ("spikebert run --task", task, flags) if p),
        "readme": readme, "note": "",
    }


def load_rows(path: Path = DATA) -> list[dict]:
    """The measured rows of the data file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["rows"]


def save_rows(rows: list[dict], path: Path = DATA) -> None:
    """Write the rows back, each with its fields in :data:`FIELDS` order."""
    data = {"about": "measured rows of the results tables; rendered by benchmarks/results_table.py",
            "rows": [{k: r.get(k) for k in FIELDS} for r in rows]}
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def merge(rows: list[dict], new: dict) -> list[dict]:
    """``rows`` with ``new`` in place of the row of the same task, flags and machine (or added)."""
    key = (new["task"], new["flags"], new["machine"])
    out = [r for r in rows if (r["task"], r["flags"], r["machine"]) != key]
    at = next((i for i, r in enumerate(rows) if (r["task"], r["flags"], r["machine"]) == key), len(out))
    return out[:at] + [new] + out[at:]


def _pct(x, digits: int = 2) -> str:
    """A percentage cell: ``–`` for not measured, a string (the paper's figure) as written."""
    return "–" if x is None else f"{x} %" if isinstance(x, str) else f"{x:.{digits}f} %"


def _time(r: dict) -> str:
    m = r.get("minutes")  # a whole number of minutes as measured, else to a tenth
    minutes = "" if m is None else f"{m} min" if isinstance(m, int) else f"{m:.1f} min"
    return ", ".join(p for p in (minutes, r.get("time_note") or "") if p) or "–"


def _label(r: dict) -> str:
    return f"{r['name']}, `{r['flags']}`" if r.get("flags") else r["name"]


HEADER = ("| task | teacher (dev) | student (dev) | paper's SpikeBERT (test) | energy, strict rule | "
          "energy, paper's convention | run time | machine |\n|---|---|---|---|---|---|---|---|")


def table(rows: list[dict], numbered: bool = False) -> str:
    """The Markdown table of ``rows``; ``numbered``: a first column ``#`` that the command list
    below it (:func:`commands`) refers to. Energy is the student's, as a share of its teacher's."""
    lines = [HEADER if not numbered else "| # " + HEADER.replace("\n|---", "\n|---|---", 1)]
    for i, r in enumerate(rows, start=1):
        cells = [_label(r), f"{r['teacher']}: {_pct(r['teacher_dev'])}", f"**{_pct(r['student_dev'])}**",
                 _pct(r["paper"]), _pct(r["energy_strict"], 1), _pct(r["energy_paper"], 1), _time(r), r["machine"]]
        lines.append("| " + (f"{i} | " if numbered else "") + " | ".join(cells) + " |")
    return "\n".join(lines)


def commands(rows: list[dict]) -> str:
    """Each row's command (and note), numbered as in the table."""
    out = []
    for i, r in enumerate(rows, start=1):
        note = f" {r['note']}" if r.get("note") else ""
        out.append(f"{i}. {_label(r)}: `{r['command']}`.{note}")
    return "\n".join(out)


def rewrite(text: str, name: str, body: str) -> str:
    """``text`` with the block between the ``results:NAME`` markers replaced by ``body``."""
    start, end = f"<!-- results:{name} -->", f"<!-- /results:{name} -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"no {start} ... {end} markers")
    return pattern.sub(lambda m: f"{start}\n{body}\n{end}", text, count=1)


def rendered(rows: list[dict], readme: str, results_md: str) -> tuple[str, str]:
    """README.md and docs/results.md with their tables made from ``rows``."""
    readme = rewrite(readme, "readme", table([r for r in rows if r.get("readme")]))
    results_md = rewrite(results_md, "all", table(rows, numbered=True) + "\n\n" + commands(rows))
    return readme, results_md


def plot(rows: list[dict], out: Path = PICTURE) -> Path:
    """Dev accuracy against energy (% of the run's teacher, strict rule), one panel per task: each
    teacher at 100 %, each student where it was measured, a line from the one to the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.get("energy_strict") is not None and r.get("student_dev") is not None]
    tasks = list(dict.fromkeys(r["task"] for r in measured))
    fig, axes = plt.subplots(2, (len(tasks) + 1) // 2, figsize=(12, 6.5), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        mine = [x for x in measured if x["task"] == task]
        for i, r in enumerate(mine):
            color = f"C{i}"
            label = r["flags"] or "default"
            ax.plot([100, r["energy_strict"]], [r["teacher_dev"], r["student_dev"]], color=color, lw=1, alpha=.5)
            ax.scatter([100], [r["teacher_dev"]], marker="s", color=color)
            ax.scatter([r["energy_strict"]], [r["student_dev"]], marker="o", color=color, label=label)
        if mine[0].get("paper") is not None:
            ax.axhline(float(mine[0]["paper"]), color="grey", ls="--", lw=.8)
        ax.set_xscale("log")
        ax.set_xlim(7, 140)
        ax.set_xticks([10, 20, 50, 100], ["10", "20", "50", "100"])
        ax.set_xticks([], minor=True)
        ax.set_title(mine[0]["name"])
        ax.margins(y=0.2)
        ax.legend(fontsize=7, loc="best", framealpha=0.6)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    fig.supxlabel("energy, % of the run's teacher (strict rule; ■ teachers at 100 %, ● students)")
    fig.supylabel("dev accuracy, % (dashed: the paper's SpikeBERT, test)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the rows (JSON)")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--results", type=Path, default=RESULTS_MD)
    ap.add_argument("--picture", type=Path, default=PICTURE)
    ap.add_argument("--collect", nargs="*", default=[], help="report.json files of finished runs to add")
    ap.add_argument("--machine", help="where the collected runs were made (required with --collect)")
    ap.add_argument("--command", help="the command of the collected run (default: rebuilt from its report)")
    ap.add_argument("--name", help="the task's name in the table")
    ap.add_argument("--paper", help="the paper's figure for the collected task, in percent")
    ap.add_argument("--show-in-readme", dest="in_readme", action="store_true",
                    help="show the collected rows in README.md too")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is out of date")
    a = ap.parse_args(argv)
    rows = load_rows(a.data)
    if a.collect:
        if not a.machine:
            ap.error("--collect needs --machine (where the runs were made)")
        for path in a.collect:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
            rows = merge(rows, row_from_report(report, machine=a.machine, command=a.command, name=a.name,
                                               paper=a.paper, readme=a.in_readme))
    readme, results_md = rendered(rows, a.readme.read_text(encoding="utf-8"), a.results.read_text(encoding="utf-8"))
    stale = [p for p, text in ((a.readme, readme), (a.results, results_md)) if p.read_text(encoding="utf-8") != text]
    if a.check:
        for p in stale:
            print(f"{p}: its results table is out of date (python benchmarks/results_table.py)")
        return 1 if stale else 0
    if a.collect:
        save_rows(rows, a.data)
    for p, text in ((a.readme, readme), (a.results, results_md)):
        p.write_text(text, encoding="utf-8")
    print(f"{len(rows)} rows -> {a.readme}, {a.results}, {plot(rows, a.picture)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
