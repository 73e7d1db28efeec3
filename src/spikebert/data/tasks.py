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
    """One labelled text: the text and its class id."""
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


# ---------------------------------------------------------------------------------------------
# Low-level readers: bytes -> (line number, label string, text) rows, with located errors


def _read_bytes(path: Path) -> bytes:
    """A data file's bytes, or an error: no such file, a folder, an empty file."""
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
    """The file's text in ``encoding`` (a byte-order mark dropped), or an error naming the line."""
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


def _unknown_label(label: str, label_names: tuple[str, ...], classes_of: str | None) -> str:
    """Why ``label`` is refused: it is none of the classes (of the task, or of ``classes_of``, the
    training file that named them)."""
    if classes_of is not None:
        return f"label {label!r} never occurs in {classes_of} (its classes: {', '.join(label_names)})"
    if _is_int(label):
        return f"label {label!r} is outside the task's classes 0..{len(label_names) - 1}"
    return f"label {label!r} is not one of the classes ({', '.join(label_names)})"


def _to_examples(path, rows, label_names: tuple[str, ...], classes_of: str | None = None) -> list[Example]:
    """Map label strings (an index or a label name) to class ids; reject empty texts.
    ``classes_of``: the training file the classes come from, named by the error for a label it
    never had."""
    by_name = {name: i for i, name in enumerate(label_names)}
    out = []
    for no, label, text in rows:
        label = label.strip()
        if not label:
            raise located(path, no, "no label")
        if label in by_name:  # a name first: "1" in a file whose classes are ("1", "2", "x") is "1"
            idx = by_name[label]
        else:
            idx = int(label) if _is_int(label) and len(label) <= 20 else -1
            if not 0 <= idx < len(label_names):
                raise located(path, no, _unknown_label(label, label_names, classes_of))
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


USER_SUFFIXES = ".csv, .tsv, .jsonl or .txt (`<label> <text>` a line)"


def _user_rows(path: Path, text_column: str, label_column: str) -> list[tuple[int, str, str]]:
    """The (line, label string, text) rows of a user file, by its suffix."""
    suffix = path.suffix.lower()
    cols = (label_column, text_column)
    if suffix in (".jsonl", ".json"):
        return list(read_jsonl(path, cols))
    if suffix in (".tsv", ".tab"):
        return list(read_delimited(path, "utf-8", "\t", csv.QUOTE_MINIMAL, cols))
    if suffix == ".csv":
        return list(read_delimited(path, "utf-8", ",", csv.QUOTE_MINIMAL, cols))
    if suffix == ".txt":
        return list(read_sst_format(path, "utf-8"))
    raise SpikeBertError(f"{path}: unknown file type {suffix or '(none)'}; use {USER_SUFFIXES}")


def read_user_file(path: Path, text_column: str = "text", label_column: str = "label",
                   label_names: tuple[str, ...] | None = None,
                   classes_of: str | None = None) -> tuple[list[Example], tuple[str, ...]]:
    """A CSV, TSV, JSONL or ``<label> <text>`` (``.txt``) file of the user's. Labels are class
    ids or names; without ``label_names`` the classes are the sorted distinct labels of this file
    (labels that are all small numbers are class indices 0..max). ``classes_of`` names where given
    ``label_names`` come from, for the error on a label they lack."""
    path = Path(path)
    rows = _user_rows(path, text_column, label_column)
    if label_names is None:
        found = sorted({r[1].strip() for r in rows if r[1].strip()})
        if found and all(x.isascii() and x.isdecimal() and len(x) <= 6 for x in found):
            label_names = tuple(str(i) for i in range(max(int(x) for x in found) + 1))
        else:
            label_names = tuple(found)
    return _to_examples(path, rows, label_names, classes_of), label_names


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
    """The data folder from ``data_dir`` or ``$SPIKEBERT_DATA`` (None: neither is set), checked to exist."""
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
    """A task's split from its public hub copy (dev cut from train when the copy has none)."""
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
        """The number of classes."""
        return len(self.labels)

    def label_counts(self) -> dict[str, int]:
        """Examples per class name, in class order."""
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
    """A split of a hub dataset named ``owner/name``, its labels from the dataset's features or its rows."""
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


# ---------------------------------------------------------------------------------------------
# A run's data: a task's splits, or the user's own labelled files

LANGUAGES = ("en", "zh")  # what a run has a teacher and a stage-1 corpus for
CJK_SHARE = 0.3  # texts whose letters are at least this share CJK ideographs are Chinese
MIN_PER_CLASS = 2  # one to learn from and one for a dev split cut from the file


@dataclass
class Splits:
    """The data of one run: ``train``, ``dev`` and an optional held-out ``test`` (evaluated once at
    the end, never used for selection), and ``record``: where each came from, as ``report.json``
    keeps it (for own data, enough for :func:`splits_from_record` to read them again)."""

    train: TaskData
    dev: TaskData
    test: TaskData | None = None
    record: dict = field(default_factory=dict)  # own data: also the data's fingerprint()

    @property
    def own(self) -> bool:
        """The user's files rather than a task's."""
        return "train_file" in self.record

    def fingerprint(self) -> str:
        """A digest of the labelled examples and class names: the same data, the same digest."""
        import hashlib

        h = hashlib.sha256("\x1f".join(self.train.labels).encode())
        for part in (self.train, self.dev):
            for ex in part.examples:
                h.update(f"{ex.label}\t{ex.text}\n".encode())
        return h.hexdigest()


def _is_cjk(ch: str) -> bool:
    """Whether ``ch`` is a CJK ideograph (unified, extension A or compatibility)."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def detect_language(texts: list[str], sample: int = 2000) -> tuple[str, float]:
    """``("zh", share)`` when at least :data:`CJK_SHARE` of the letters in the first ``sample``
    texts are CJK ideographs, else ``("en", share)``."""
    letters = cjk = 0
    for text in texts[:sample]:
        for ch in text:
            if ch.isalpha():
                letters += 1
                cjk += _is_cjk(ch)
    share = cjk / letters if letters else 0.0
    return ("zh" if share >= CJK_SHARE else "en"), share


def check_classes(path, examples: list[Example], label_names: tuple[str, ...]) -> None:
    """At least two classes, and at least :data:`MIN_PER_CLASS` examples of each in the file."""
    if len(label_names) < 2:
        raise SpikeBertError(f"{path}: only one class ({', '.join(label_names)}); a classifier needs two or more")
    counts = Counter(ex.label for ex in examples)
    for i, name in enumerate(label_names):
        n = counts.get(i, 0)
        if n < MIN_PER_CLASS:
            numbered = " (labels that are numbers are class indices 0..max: number the classes from 0, or " \
                       "write names)" if n == 0 and name == str(i) else ""
            raise SpikeBertError(f"{path}: class {name!r} has {'no example' if n == 0 else 'one example'}; every "
                                 f"class needs at least {MIN_PER_CLASS} (to learn it, and to have it in the dev "
                                 f"split cut from the file){numbered}")


def _choose_language(language: str | None, texts: list[str]) -> tuple[str, str]:
    """The language given, or the one detected from ``texts``; and how it was chosen."""
    if language is not None:
        if language not in LANGUAGES:
            raise SpikeBertError(f"--language must be one of {', '.join(LANGUAGES)} (got {language!r})")
        return language, "given"
    found, share = detect_language(texts)
    return found, f"detected: {share * 100:.0f} % of the letters are CJK"


def user_splits(train_file, dev_file=None, test_file=None, *, text_column: str = "text",
                label_column: str = "label", labels: tuple[str, ...] | None = None, language: str | None = None,
                name: str | None = None) -> Splits:
    """The user's labelled files as a run's data. Classes are ``labels`` (their order) or the
    training file's labels; dev and test must use no other. Without ``dev_file`` dev is a seeded,
    stratified :data:`DEV_FRACTION` cut of the training file (seed :data:`DEV_SEED`)."""
    path = Path(train_file)
    examples, names = read_user_file(path, text_column, label_column, tuple(labels) if labels else None)
    check_classes(path, examples, names)
    lang, how = _choose_language(language, [ex.text for ex in examples])
    name = name or path.stem
    of = f"the training file {path}"

    def held_out(file) -> TaskData:
        """A dev or test file read with the training file's classes."""
        exs = read_user_file(Path(file), text_column, label_column, names, classes_of=of)[0]
        return TaskData(name, names, lang, exs, str(file))

    if dev_file:
        train, dev, cut = examples, held_out(dev_file), None
    else:
        train, dev_examples = stratified_split(examples)
        dev, cut = TaskData(name, names, lang, dev_examples, f"{path} (dev cut)"), {
            "fraction": DEV_FRACTION, "seed": DEV_SEED, "stratified": True}
    record = {"name": name, "train_file": str(path), "dev_file": dev_file and str(dev_file),
              "test_file": test_file and str(test_file), "text_column": text_column, "label_column": label_column,
              "labels": list(names), "language": lang, "language_from": how, "dev_cut": cut}
    splits = Splits(TaskData(name, names, lang, train, str(path)), dev, held_out(test_file) if test_file else None,
                    record)
    record["fingerprint"] = splits.fingerprint()
    return splits


def splits_from_record(record: dict) -> Splits:
    """The own data of a run again, from the ``record`` its :class:`Splits` had."""
    return user_splits(record["train_file"], record.get("dev_file"), record.get("test_file"),
                       text_column=record["text_column"], label_column=record["label_column"],
                       labels=tuple(record["labels"]), language=record["language"], name=record["name"])


def task_splits(task: str, data_dir=None, test_file=None) -> Splits:
    """A task's train and dev splits (from the data folder or the hub) and, given, a test file in
    the task's own format."""
    train, dev = load_data(task, "train", data_dir), load_data(task, "dev", data_dir)
    test = load_data(task, "test", data_dir, file=str(test_file), labels=train.labels) if test_file else None
    return Splits(train, dev, test, {"task": task, "train": train.source, "dev": dev.source,
                                     "test_file": test_file and str(test_file), "language": train.language})
