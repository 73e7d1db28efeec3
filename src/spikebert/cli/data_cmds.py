"""``spikebert data info``."""

from __future__ import annotations

import json

from spikebert.cli import data_app
from spikebert.cli.options import DataDir, File, Json, LabelColumn, Task, TextColumn
from spikebert.data.tasks import load_data


@data_app.command("info")
def info(task: Task = None, data_dir: DataDir = None, file: File = None, text_column: TextColumn = "text",
         label_column: LabelColumn = "label", json_out: Json = False):
    """Split sizes and label counts of a task (or of one file)."""
    splits = {"file": load_data(task, "train", data_dir, file, text_column, label_column)} if file else {
        s: load_data(task, s, data_dir) for s in ("train", "dev")}
    first = next(iter(splits.values()))
    report = {"task": first.name, "language": first.language, "labels": list(first.labels),
              "splits": {s: {"n": len(d.examples), "labels": d.label_counts(), "source": d.source}
                         for s, d in splits.items()}}
    if json_out:
        print(json.dumps(report, ensure_ascii=False))
        return
    print(f"task {report['task']} ({report['language']}), {len(first.labels)} classes: {', '.join(first.labels)}")
    for s, r in report["splits"].items():
        counts = ", ".join(f"{k} {v}" for k, v in r["labels"].items())
        print(f"  {s:<5} {r['n']:>6} examples   {counts}   [{r['source']}]")
