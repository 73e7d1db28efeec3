"""File readers: bytes -> ``(line number, label string, text)`` rows -> labelled examples.

Every reader either returns valid rows or raises :class:`SpikeBertError` naming the file and line.
The release formats of the paper's tasks (:mod:`.registry` says which task uses which) and the
user's own CSV, TSV, JSONL and ``<label> <text>`` files are all read here.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from spikebert.errors import SpikeBertError, located


@dataclass(frozen=True)
class Example:
    """One labelled text: the text and its class id."""
    text: str
    label: int



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


def to_examples(path, rows, label_names: tuple[str, ...], classes_of: str | None = None) -> list[Example]:
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
    return to_examples(path, rows, label_names, classes_of), label_names

