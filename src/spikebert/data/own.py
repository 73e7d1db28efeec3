"""A run's data: a task's splits or the user's own labelled files (:func:`user_splits`), with the
language detected from the texts, the classes checked and, without a dev file, a seeded,
stratified dev cut of the training file."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from spikebert.data.readers import Example, read_user_file
from spikebert.data.registry import DEV_FRACTION, DEV_SEED, TaskData, stratified_split
from spikebert.errors import SpikeBertError

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

