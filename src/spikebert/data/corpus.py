"""Unlabelled corpora for stage 1, read through Hugging Face ``datasets``.

Text files (one text a line) and hub datasets alike become an Arrow table on disk, memory-mapped
rather than loaded, and are tokenised by ``datasets.map`` into a cached on-disk column: a corpus far
larger than memory (BookCorpus and Wikipedia at paper scale) works, and only the token counts of
the texts (4 bytes each) are held in memory, for length-bucketed batching.

A source is a text file, or ``hub:NAME[:CONFIG]`` for a hub dataset with a ``text`` column (for
users with a network). Blank lines are dropped; ``limit`` keeps the first texts or, with a
``shuffle_seed``, a seeded sample over all sources.

The tokenised table (what training reads) is kept in a folder of its own,
``$HF_DATASETS_CACHE/spikebert-tokens/<fingerprint>/tokens.arrow``, with a manifest
(:mod:`spikebert.training.manifest`) written after it and verified before it is used. A table that
does not verify, or a ``datasets`` cache that fails to load, is rebuilt from the source files (one
line says so); the intermediate ``datasets`` caches are rebuilt with it.
"""

from __future__ import annotations

import random
from pathlib import Path

from torch.utils.data import Dataset

from spikebert.data.batching import MAX_LENGTH, pad_id
from spikebert.errors import SpikeBertError, first_line
from spikebert.training.manifest import (has_manifest, no_space, no_space_error, usable_cache, verify,
                                        write_manifest)

TOKENS = "tokens.arrow"


class _Damaged(Exception):
    """A corpus cache that did not verify (the line saying so is printed)."""


class ArrowEncoded(Dataset):
    """Token ids in an Arrow table (``input_ids``, ``length``): what :func:`spikebert.training.trainer.fit`
    takes in place of an in-memory :class:`spikebert.data.batching.Encoded`."""

    labels = None

    def __init__(self, table, pad_token_id: int = 0):
        self.table, self.pad_token_id = table, pad_token_id

    def __len__(self):
        return len(self.table)

    def __getitem__(self, i):
        return {"input_ids": self.table[int(i)]["input_ids"], "index": int(i)}

    def lengths(self) -> list[int]:
        return list(self.table["length"])


def tokens_cache_dir() -> Path:
    """Where the tokenised tables are kept (beside the other ``datasets`` caches)."""
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "spikebert-tokens"


def _load_source(source: str, fresh: bool = False):
    import datasets

    if source.startswith("hub:"):
        name, _, config = source[4:].partition(":")
        try:
            ds = datasets.load_dataset(name, config or None, split="train",
                                       download_mode="force_redownload" if fresh else None)
        except Exception as e:
            raise SpikeBertError(f"corpus {source}: the hub dataset could not be loaded (offline?) "
                                 f"[{type(e).__name__}]") from None
        if "text" not in ds.column_names:
            raise SpikeBertError(f"corpus {source}: no 'text' column (has {', '.join(ds.column_names)})")
        return ds.select_columns(["text"])
    path = Path(source)
    if not path.is_file():
        raise SpikeBertError(f"{path}: no such corpus file (a hub dataset is written hub:NAME)")
    try:
        return datasets.load_dataset("text", data_files=str(path), split="train", encoding="utf-8",
                                     download_mode="force_redownload" if fresh else None)
    except Exception as e:  # undecodable bytes and the like surface here, wrapped by datasets
        _raise_if_no_space(e, tokens_cache_dir().parent)
        cause = e
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise SpikeBertError(f"{path}: cannot read the corpus ({first_line(cause, typed=True)})") from None


def load_corpus(sources: list[str], tokenizer, max_length: int = MAX_LENGTH, limit: int | None = None,
                shuffle_seed: int | None = None, log=print) -> ArrowEncoded:
    if not sources:
        raise SpikeBertError("no corpus given")
    try:
        return _load_corpus(sources, tokenizer, max_length, limit, shuffle_seed, log, fresh=False)
    except (SpikeBertError, KeyboardInterrupt):
        raise
    except _Damaged:
        pass
    except Exception as e:  # a datasets cache file that cannot be read back (or a full disk)
        _raise_if_no_space(e, tokens_cache_dir().parent)
        log(f"corpus cache of {', '.join(map(str, sources))}: cannot be read ({first_line(e, typed=True)}); "
            "rebuilding it")
    return _load_corpus(sources, tokenizer, max_length, limit, shuffle_seed, log, fresh=True)


def _raise_if_no_space(e: BaseException, where) -> None:
    """A full disk anywhere in the causes of ``e`` (``datasets`` wraps what it meets)."""
    while e is not None:
        err = no_space_error(e, where) if isinstance(e, OSError) else None
        if err is not None:
            raise err from None
        e = e.__cause__ or e.__context__


def _load_corpus(sources, tokenizer, max_length, limit, shuffle_seed, log, fresh: bool) -> ArrowEncoded:
    """The corpus as :func:`load_corpus` gives it; ``fresh``: every ``datasets`` cache rebuilt."""
    import datasets
    from datasets.fingerprint import Hasher

    parts = [_load_source(str(s), fresh) for s in sources]
    ds = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    ds = ds.map(lambda b: {"text": [t.strip() for t in b["text"]]}, batched=True, desc="strip",
                load_from_cache_file=not fresh)
    ds = ds.filter(lambda b: [bool(t) for t in b["text"]], batched=True, desc="drop blank lines",
                   load_from_cache_file=not fresh)
    if len(ds) == 0:
        raise SpikeBertError(f"{', '.join(map(str, sources))}: the corpus holds no text")
    if shuffle_seed is not None:
        order = list(range(len(ds)))
        random.Random(shuffle_seed).shuffle(order)
        ds = ds.select(order[:limit] if limit else order)
    elif limit is not None:
        ds = ds.select(range(min(limit, len(ds))))

    def encode(batch):
        ids = tokenizer(batch["text"], truncation=True, max_length=max_length)["input_ids"]
        return {"input_ids": ids, "length": [len(x) for x in ids]}

    folder = tokens_cache_dir() / Hasher.hash([ds._fingerprint, Hasher.hash(encode)])
    if not fresh and folder.exists() and not usable_cache(folder, lambda: verify(folder), "tokenised corpus", log):
        raise _Damaged
    if fresh or not has_manifest(folder):  # what a killed or failed build left
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    with no_space(folder):
        ds = ds.map(encode, batched=True, batch_size=1000, remove_columns=["text"], desc="tokenise",
                    cache_file_name=str(folder / TOKENS))
        if not has_manifest(folder):
            write_manifest(folder, [TOKENS])
    return ArrowEncoded(ds, pad_id(tokenizer))
