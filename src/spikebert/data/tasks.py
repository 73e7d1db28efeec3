"""Task data: the six paper tasks, user files and hub datasets, read into labelled examples.

The parts live in their own modules and are all importable from here, as before:

- :mod:`.readers`: file formats -> labelled examples (:class:`Example`, ``read_*``);
- :mod:`.registry`: the task registry (:data:`TASKS`), the data folder, the seeded dev cut, :class:`TaskData`;
- :mod:`.own`: a run's data (:class:`Splits`), the user's own files (:func:`user_splits`);
- this module: loading a split of a task or a hub dataset (:func:`load_data`, :func:`task_splits`).

With neither ``--data-dir`` nor ``SPIKEBERT_DATA``, a task falls back to its public copy on the hub.
"""

from __future__ import annotations

from pathlib import Path

from spikebert.data.own import (CJK_SHARE, LANGUAGES, MIN_PER_CLASS, Splits, check_classes,  # noqa: F401
                                detect_language, splits_from_record, user_splits)
from spikebert.data.readers import (USER_SUFFIXES, Example, read_delimited, read_jsonl, read_lines,  # noqa: F401
                                    read_sst_format, read_user_file, to_examples)
from spikebert.data.registry import (DATA_ENV, DEV_FRACTION, DEV_SEED, TASKS, TaskData, TaskSpec,  # noqa: F401
                                     get_task, label_fields, read_task_file, resolve_data_dir, split_file,
                                     stratified_split)
from spikebert.errors import SpikeBertError


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
            return to_examples(f"{hub_name}[{name}]", rows, task.labels)
    rows = [(i + 1, str(r[label_col]), str(r[text_col]).strip()) for i, r in enumerate(ds["train"])]
    train, dev = stratified_split(to_examples(f"{hub_name}[train]", rows, task.labels))
    return train if split == "train" else dev


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
    return TaskData(name.split("/")[-1], tuple(labels), language, to_examples(f"{name}[{part}]", rows, labels), name)


def task_splits(task: str, data_dir=None, test_file=None) -> Splits:
    """A task's train and dev splits (from the data folder or the hub) and, given, a test file in
    the task's own format."""
    train, dev = load_data(task, "train", data_dir), load_data(task, "dev", data_dir)
    test = load_data(task, "test", data_dir, file=str(test_file), labels=train.labels) if test_file else None
    return Splits(train, dev, test, {"task": task, "train": train.source, "dev": dev.source,
                                     "test_file": test_file and str(test_file), "language": train.language})
