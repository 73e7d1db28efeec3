"""SST-5 as a user's own CSV: writes the release's train and dev files as CSV with named labels
(``very negative`` ... ``very positive``) and checks, at full size, that ``spikebert run
--train-file`` reads exactly the examples, in the same order and with the same class ids, that
``--task sst5`` reads (not a test: it writes files and prints what it compared).

    SPIKEBERT_DATA=../shared/datasets python benchmarks/sst5_as_csv.py --output runs/own-sst5

Then the same run as ``--task sst5`` from the user's side (the command is printed at the end).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from spikebert.data.tasks import task_splits, user_splits


def write_csv(path: Path, examples, names) -> Path:
    """The examples as a CSV a user would make: a header, the sentence, the label's name."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence", "sentiment"])
        for ex in examples:
            w.writerow([ex.text, names[ex.label]])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", type=Path, required=True, help="folder for reviews.csv and reviews-dev.csv")
    ap.add_argument("--data-dir", default=None, help="the paper tasks' folder (default: $SPIKEBERT_DATA)")
    a = ap.parse_args()
    task = task_splits("sst5", a.data_dir)
    names = task.train.labels
    a.output.mkdir(parents=True, exist_ok=True)
    train = write_csv(a.output / "reviews.csv", task.train.examples, names)
    dev = write_csv(a.output / "reviews-dev.csv", task.dev.examples, names)
    own = user_splits(train, dev, text_column="sentence", label_column="sentiment", labels=names)
    for part in ("train", "dev"):
        mine, theirs = getattr(own, part), getattr(task, part)
        same = mine.examples == theirs.examples and mine.labels == theirs.labels
        print(f"{part}: {len(mine.examples)} examples from {Path(mine.source).name}, "
              f"{len(theirs.examples)} from --task sst5: {'identical' if same else 'DIFFERENT'}")
        if not same:
            raise SystemExit(1)
    print(f"language {own.train.language} ({own.record['language_from']}); classes: {', '.join(names)}")
    print(f"spikebert run --train-file {train} --dev-file {dev} --text-column sentence "
          f"--label-column sentiment --labels '{','.join(names)}'")


if __name__ == "__main__":
    main()
