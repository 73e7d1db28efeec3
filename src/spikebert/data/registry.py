"""The task registry: what each of the six paper tasks is, where its files lie in the data folder,
and the seeded dev split of the tasks whose release has none.

The data folder comes from ``--data-dir`` or the ``SPIKEBERT_DATA`` environment variable
(:func:`resolve_data_dir`); :mod:`.tasks` loads a task's splits from it or from the hub.
"""

from __future__ import annotations

import csv
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from spikebert.data.readers import Example, read_delimited, read_sst_format, to_examples
from spikebert.errors import SpikeBertError

DATA_ENV = "SPIKEBERT_DATA"
DEV_FRACTION = 0.1
DEV_SEED = 20230829  # fixed: the cut dev split is the same on every run and machine

@dataclass(frozen=True)
class TaskSpec:
    """What a task is: where its files are, how they are written and what its labels mean."""

    name: str
    language: str  # "en" or "zh": chooses the default teacher and stage-1 corpus
    labels: tuple[str, ...]  # label names, index = class id
    fmt: str  # "sst" (`<label> <text>` a line), "tsv" (header, unquoted), "csv" (header, quoted)
    encoding: str
    files: dict  # split -> path relative to the data folder; "all" when dev is cut from it
    hub: tuple[str, str, str] | None = None  # (hub dataset, text column, label column)
    columns: tuple[str, str] | None = None  # (label column, text column) for tsv/csv

    @property
    def num_labels(self) -> int:
        """The number of classes."""
        return len(self.labels)

    @property
    def has_dev_file(self) -> bool:
        """Whether the release has a dev file (else dev is cut from the one file)."""
        return "dev" in self.files


TASKS: dict[str, TaskSpec] = {
    "sst2": TaskSpec("sst2", "en", ("negative", "positive"), "sst", "utf-8",
                     {"train": "sst2/train.txt", "dev": "sst2/dev.txt"},
                     hub=("SetFit/sst2", "text", "label")),
    "sst5": TaskSpec("sst5", "en", ("very negative", "negative", "neutral", "positive", "very positive"),
                     "sst", "utf-8", {"train": "sst5/train.txt", "dev": "sst5/dev.txt"},
                     hub=("SetFit/sst5", "text", "label")),
    "mr": TaskSpec("mr", "en", ("negative", "positive"), "sst", "latin-1", {"all": "mr/all.txt"},
                   hub=("cornell-movie-review-data/rotten_tomatoes", "text", "label")),
    "subj": TaskSpec("subj", "en", ("subjective", "objective"), "sst", "latin-1", {"all": "subj/all.txt"},
                     hub=("SetFit/subj", "text", "label")),
    "chnsenti": TaskSpec("chnsenti", "zh", ("negative", "positive"), "tsv", "utf-8",
                         {"train": "chnsenti/train.tsv", "dev": "chnsenti/dev.tsv"},
                         hub=("lansinuote/ChnSentiCorp", "text", "label"), columns=("label", "text_a")),
    "waimai": TaskSpec("waimai", "zh", ("negative", "positive"), "csv", "utf-8",
                       {"all": "waimai/waimai_10k.csv"},
                       hub=("XiangPan/waimai_10k", "review", "label"), columns=("label", "review")),
}


def get_task(name: str) -> TaskSpec:
    """The registered task of that name, or an error listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise SpikeBertError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


def read_task_file(task: TaskSpec, path: Path) -> list[Example]:
    """Read one file in a task's own format (how a held-out test file is evaluated)."""
    path = Path(path)
    if task.fmt == "sst":
        rows = read_sst_format(path, task.encoding)
    elif task.fmt == "tsv":
        rows = read_delimited(path, task.encoding, "\t", csv.QUOTE_NONE, task.columns)
    elif task.fmt == "csv":
        rows = read_delimited(path, task.encoding, ",", csv.QUOTE_MINIMAL, task.columns)
    else:  # pragma: no cover - registry is static
        raise SpikeBertError(f"task {task.name}: unknown format {task.fmt}")
    return to_examples(path, rows, task.labels)


def stratified_split(examples: list[Example], fraction: float = DEV_FRACTION, seed: int = DEV_SEED):
    """A seeded, stratified (train, dev) cut: the same on every run."""
    by_label: dict[int, list[int]] = {}
    for i, ex in enumerate(examples):
        by_label.setdefault(ex.label, []).append(i)
    rng = random.Random(seed)
    dev_idx: set[int] = set()
    for label in sorted(by_label):
        idx = by_label[label][:]
        rng.shuffle(idx)
        dev_idx.update(idx[: max(1, round(len(idx) * fraction))])
    train = [ex for i, ex in enumerate(examples) if i not in dev_idx]
    dev = [ex for i, ex in enumerate(examples) if i in dev_idx]
    return train, dev


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The data folder from ``data_dir`` or ``$SPIKEBERT_DATA`` (None: neither is set), checked to exist."""
    value = data_dir if data_dir not in (None, "") else os.environ.get(DATA_ENV) or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        source = "--data-dir" if data_dir else DATA_ENV
        raise SpikeBertError(f"{path}: data directory (from {source}) does not exist")
    return path


def split_file(task: TaskSpec, split: str, root: Path) -> Path:
    """The release file a split is read from (one file holds both splits when there is no dev file)."""
    return root / task.files[split if task.has_dev_file else "all"]


def label_fields(labels: tuple[str, ...]) -> dict:
    """A classifier config's label fields for these label names: ``num_labels``, ``id2label``, ``label2id``."""
    id2label = dict(enumerate(labels))
    return {"num_labels": len(labels), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


@dataclass
class TaskData:
    """A task's name, label names, language and the examples of one split."""

    name: str
    labels: tuple[str, ...]
    language: str
    examples: list[Example] = field(default_factory=list)
    source: str = ""

    @property
    def num_labels(self) -> int:
        """The number of classes."""
        return len(self.labels)

    def label_counts(self) -> dict[str, int]:
        """Examples per class name, in class order."""
        counts = Counter(ex.label for ex in self.examples)
        return {self.labels[i]: counts.get(i, 0) for i in range(len(self.labels))}

