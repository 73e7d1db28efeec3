"""Task data: the six paper tasks, user files and hub datasets, read into labelled examples.

Every reader either returns valid rows or raises :class:`SpikeBertError` naming the file and line.
The data folder comes from ``--data-dir`` or the ``SPIKEBERT_DATA`` environment variable; with
neither, a task falls back to its public copy on the Hugging Face hub.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from spikebert.errors import SpikeBertError, located

DATA_ENV = "SPIKEBERT_DATA"
DEV_FRACTION = 0.1
DEV_SEED = 20230829  # fixed: the cut dev split is the same on every run and machine


@dataclass(frozen=True)
class Example:
    text: str
    label: int


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
        return len(self.labels)

    @property
    def has_dev_file(self) -> bool:
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
    try:
        return TASKS[name]
    except KeyError:
        raise SpikeBertError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


# ---------------------------------------------------------------------------------------------
# Low-level readers: bytes -> (line number, label string, text) rows, with located errors


def _read_bytes(path: Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise SpikeBertError(f"{path}: no such file")
    if path.is_dir():
        raise SpikeBertError(f"{path}: is a folder, expected a data file")
    data = path.read_bytes()
    if not data.strip():
        raise SpikeBertError(f"{path}: the file is empty")
    return data


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise located(path, line, f"byte 0x{data[e.start]:02x} cannot be decoded as {encoding}") from None
    return text[1:] if text.startswith("\ufeff") else text  # a byte-order mark is not text


def _lines(text: str) -> list[str]:
    """Split on '\\n' only: MR and Subj hold U+0085, which str.splitlines would break at."""
    return [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]


def read_lines(path: Path, encoding: str = "utf-8"):
    """One text a line, blank lines skipped. Yields (line, "", text)."""
    text = _decode(path, _read_bytes(path), encoding)
    for no, line in enumerate(_lines(text), start=1):
        if line.strip():
            yield no, "", line.strip()


def read_sst_format(path: Path, encoding: str = "utf-8"):
    """`<label> <text>` a line (Kim 2014 release). Yields (line, label string, text)."""
    text = _decode(path, _read_bytes(path), encoding)
    for no, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        label, _, sentence = line.strip().partition(" ")
        yield no, label, sentence.strip()


def read_delimited(path: Path, encoding: str, delimiter: str, quoting: int, columns: tuple[str | None, str]):
    """A header-first CSV/TSV file. Yields (line, label string, text)."""
    label_col, text_col = columns  # label_col None: texts only (labels come back as "")
    text = _decode(path, _read_bytes(path), encoding)
    # strict: a quote that is never closed is an error, not one text swallowing the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting,
                        strict=quoting != csv.QUOTE_NONE)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as e:
        raise located(path, 1, f"cannot read the header: {e}") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    for col in (label_col, text_col):
        if col is not None and col not in header:
            raise located(path, 1, f"no column {col!r} in the header (found: {', '.join(header)})")
    ti = header.index(text_col)
    li = header.index(label_col) if label_col is not None else ti
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise located(path, reader.line_num, f"malformed row: {e}") from None
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) <= max(li, ti):
            raise located(path, reader.line_num, f"expected {len(header)} columns, found {len(row)}")
        yield reader.line_num, (row[li] if label_col is not None else ""), row[ti].strip()


def read_jsonl(path: Path, columns: tuple[str | None, str]):
    """JSON lines, one object a line. Yields (line, label string, text); label column None: texts only."""
    label_col, text_col = columns
    text = _decode(path, _read_bytes(path), "utf-8")
    for no, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise located(path, no, f"not a JSON object: {e.msg}") from None
        except RecursionError:
            raise located(path, no, "not a JSON object: nested too deeply") from None
        if not isinstance(obj, dict):
            raise located(path, no, "not a JSON object")
        for col in (label_col, text_col):
            if col is not None and col not in obj:
                raise located(path, no, f"no field {col!r}")
        yield no, (str(obj[label_col]) if label_col is not None else ""), str(obj[text_col]).strip()


def _is_int(label: str) -> bool:
    """A plain decimal class index such as ``1`` or ``-1`` (not ``²``, ``--1`` or ``1.0``, which
    str.isdigit accepts or int() refuses)."""
    digits = label[1:] if label.startswith("-") else label
    return digits.isascii() and digits.isdecimal()


def _to_examples(path, rows, label_names: tuple[str, ...]) -> list[Example]:
    """Map label strings (an index or a label name) to class ids; reject empty texts."""
    by_name = {name: i for i, name in enumerate(label_names)}
    out = []
    for no, label, text in rows:
        label = label.strip()
        if not label:
            raise located(path, no, "no label")
        if label in by_name:  # a name first: "1" in a file whose classes are ("1", "2", "x") is "1"
            idx = by_name[label]
        elif _is_int(label):
            idx = int(label) if len(label) <= 20 else -1
            if not 0 <= idx < len(label_names):
                raise located(path, no, f"label {label!r} is outside the task's classes 0..{len(label_names) - 1}")
        else:
            raise located(path, no, f"label {label!r} is not one of the classes ({', '.join(label_names)})")
        if not text:
            raise located(path, no, "empty text")
        out.append(Example(text, idx))
    if not out:
        raise SpikeBertError(f"{path}: no examples in the file")
    return out


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
    return _to_examples(path, rows, task.labels)


def read_user_file(path: Path, text_column: str = "text", label_column: str = "label",
                   label_names: tuple[str, ...] | None = None) -> tuple[list[Example], tuple[str, ...]]:
    """A CSV, TSV or JSONL file of the user's. Labels are class ids or names; without
    ``label_names`` the classes are the sorted distinct labels of this file."""
    path = Path(path)
    suffix = path.suffix.lower()
    cols = (label_column, text_column)
    if suffix in (".jsonl", ".json"):
        rows = list(read_jsonl(path, cols))
    elif suffix in (".tsv", ".tab"):
        rows = list(read_delimited(path, "utf-8", "\t", csv.QUOTE_MINIMAL, cols))
    elif suffix == ".csv":
        rows = list(read_delimited(path, "utf-8", ",", csv.QUOTE_MINIMAL, cols))
    else:
        raise SpikeBertError(f"{path}: unknown file type {suffix or '(none)'}; use .csv, .tsv or .jsonl")
    if label_names is None:
        found = sorted({r[1].strip() for r in rows if r[1].strip()})
        if found and all(x.isascii() and x.isdecimal() and len(x) <= 6 for x in found):
            label_names = tuple(str(i) for i in range(max(int(x) for x in found) + 1))
        else:
            label_names = tuple(found)
    return _to_examples(path, rows, label_names), label_names


# ---------------------------------------------------------------------------------------------
# Splits


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
    value = data_dir if data_dir not in (None, "") else os.environ.get(DATA_ENV) or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        source = "--data-dir" if data_dir else DATA_ENV
        raise SpikeBertError(f"{path}: data directory (from {source}) does not exist")
    return path


def load_task_split(task: TaskSpec | str, split: str = "train", data_dir=None) -> list[Example]:
    """The ``train`` or ``dev`` split of a task from the data folder (or the hub)."""
    task = get_task(task) if isinstance(task, str) else task
    if split not in ("train", "dev"):
        raise SpikeBertError(f"split must be 'train' or 'dev' (test splits are read with --file), not {split!r}")
    root = resolve_data_dir(data_dir)
    if root is None:
        return _load_from_hub(task, split)
    rows = read_task_file(task, split_file(task, split, root))
    if task.has_dev_file:
        return rows
    train, dev = stratified_split(rows)
    return train if split == "train" else dev


def split_file(task: TaskSpec, split: str, root: Path) -> Path:
    """The release file a split is read from (one file holds both splits when there is no dev file)."""
    return root / task.files[split if task.has_dev_file else "all"]


def _load_from_hub(task: TaskSpec, split: str) -> list[Example]:
    hub_name, text_col, label_col = task.hub
    looked_for = " and ".join(task.files.values())
    hint = (f"task {task.name}: no data directory set and its hub copy {hub_name!r} could not be loaded"
            f" (offline?). Set --data-dir or {DATA_ENV} to a folder holding {looked_for}")
    try:
        import datasets

        ds = datasets.load_dataset(hub_name)
    except Exception as e:  # network, missing dataset, auth: all end the same way for the user
        raise SpikeBertError(f"{hint} [{type(e).__name__}]") from None
    names = {"dev": ["validation", "dev"], "train": ["train"]}[split]
    for name in names:
        if name in ds:
            rows = [(i + 1, str(r[label_col]), str(r[text_col]).strip()) for i, r in enumerate(ds[name])]
            return _to_examples(f"{hub_name}[{name}]", rows, task.labels)
    rows = [(i + 1, str(r[label_col]), str(r[text_col]).strip()) for i, r in enumerate(ds["train"])]
    train, dev = stratified_split(_to_examples(f"{hub_name}[train]", rows, task.labels))
    return train if split == "train" else dev


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
        return len(self.labels)

    def label_counts(self) -> dict[str, int]:
        counts = Counter(ex.label for ex in self.examples)
        return {self.labels[i]: counts.get(i, 0) for i in range(len(self.labels))}


def load_data(task: str | None = None, split: str = "train", data_dir=None, file: str | None = None,
              text_column: str = "text", label_column: str = "label", labels: tuple[str, ...] | None = None,
              language: str = "en", limit: int | None = None) -> TaskData:
    """One entry point for every kind of input the CLI accepts.

    - ``task`` alone: that task's split from the data folder or the hub;
    - ``task`` and ``file``: the file read in the task's own format;
    - ``file`` alone: a user CSV/TSV/JSONL file (``labels`` fixes the class order);
    - ``task`` not registered: a hub dataset name (``text_column``/``label_column``).
    """
    if task is not None and task in TASKS:
        spec = TASKS[task]
        if file:
            exs, src = read_task_file(spec, Path(file)), str(file)
        else:
            exs, src = load_task_split(spec, split, data_dir), f"{task}/{split}"
        data = TaskData(spec.name, spec.labels, spec.language, exs, src)
    elif file:
        exs, names = read_user_file(Path(file), text_column, label_column, labels)
        data = TaskData(Path(file).stem, names, language, exs, str(file))
    elif task is not None:
        data = _load_hub_dataset(task, split, text_column, label_column, labels, language)
    else:
        raise SpikeBertError("give --task NAME or --file PATH")
    if limit is not None:
        data.examples = data.examples[:limit]
    return data


def _load_hub_dataset(name, split, text_col, label_col, labels, language) -> TaskData:
    if "/" not in name:
        raise SpikeBertError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)} "
                             "(or a hub dataset as owner/name, or --file PATH)")
    try:
        import datasets

        ds = datasets.load_dataset(name)
    except Exception as e:
        raise SpikeBertError(f"hub dataset {name!r} could not be loaded (offline?) [{type(e).__name__}]") from None
    part = next((p for p in ({"dev": ["validation", "dev"], "train": ["train"]}[split]) if p in ds), None)
    if part is None:
        raise SpikeBertError(f"hub dataset {name!r} has no {split} split (has: {', '.join(ds)})")
    rows = [(i + 1, str(r[label_col]), str(r[text_col]).strip()) for i, r in enumerate(ds[part])]
    if labels is None:
        feat = ds[part].features.get(label_col)
        labels = tuple(feat.names) if hasattr(feat, "names") else tuple(sorted({r[1] for r in rows}))
    return TaskData(name.split("/")[-1], tuple(labels), language, _to_examples(f"{name}[{part}]", rows, labels), name)
