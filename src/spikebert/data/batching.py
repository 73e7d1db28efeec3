"""Tokenisation, dynamic padding and length-bucketed batches.

Texts are tokenised once with the teacher's (fast) tokenizer. Batches are padded to their own
longest sequence, not to a fixed length, and the sampler groups texts of similar length so that
little padding is left: on SST-2 this cuts the padded tokens of a batch several-fold.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


MAX_LENGTH = 128  # tokens a text is cut to, in every job and command unless told otherwise
EVAL_BATCH_SIZE = 64  # texts a batch when a model is evaluated or measured without training


def pad_id(tokenizer) -> int:
    """The tokenizer's padding id (0 for a tokenizer that has none)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def tokenize(tokenizer, texts: list[str], max_length: int = MAX_LENGTH, batch: int = 2048) -> list[list[int]]:
    """Token ids (with [CLS]/[SEP]) of every text, truncated to ``max_length``."""
    ids: list[list[int]] = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], truncation=True, max_length=max_length)
        ids.extend(enc["input_ids"])
    return ids


@dataclass
class Encoded(Dataset):
    """Token ids with optional hard labels and teacher soft labels (augmented texts have none)."""

    input_ids: list[list[int]]
    labels: list[int] | None = None
    pad_token_id: int = 0  # the tokenizer's: batches are padded with it

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, i):
        item = {"input_ids": self.input_ids[i], "index": i}
        if self.labels is not None:
            item["labels"] = self.labels[i]
        return item

    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]


class Collator:
    """Pads a list of items to the batch's longest sequence; ``extra(batch) -> {name: tensor}``
    adds tensors of the batch's rows (cached teacher outputs), built where the batch is (in a
    loader worker on CUDA, off the training loop)."""

    def __init__(self, pad_token_id: int = 0, extra=None):
        self.pad, self.extra = pad_token_id, extra

    def __call__(self, items):
        longest = max(len(it["input_ids"]) for it in items)
        ids = torch.full((len(items), longest), self.pad, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for r, it in enumerate(items):
            n = len(it["input_ids"])
            ids[r, :n] = torch.tensor(it["input_ids"], dtype=torch.long)
            mask[r, :n] = 1
        batch = {"input_ids": ids, "attention_mask": mask,
                 "index": torch.tensor([it["index"] for it in items], dtype=torch.long)}
        if "labels" in items[0]:
            batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
        if self.extra is not None:
            batch.update(self.extra(batch))
        return batch


class LengthBucketSampler(Sampler):
    """Batches of indices of similar length.

    Training (``shuffle=True``): the indices are shuffled with ``seed + epoch``, cut into pools of
    ``pool`` batches, each pool sorted by length and cut into batches, and the batches shuffled.
    Evaluation: sorted by length. The order is a pure function of (seed, epoch): a resumed run
    sees the batches an uninterrupted one would.
    """

    def __init__(self, lengths: list[int], batch_size: int, shuffle: bool = True, seed: int = 0, pool: int = 50):
        self.lengths, self.batch_size, self.shuffle, self.seed, self.pool = lengths, batch_size, shuffle, seed, pool
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        idx = list(range(len(self.lengths)))
        if not self.shuffle:
            idx.sort(key=lambda i: self.lengths[i])
            return [idx[i:i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        rng = random.Random(self.seed * 100003 + self.epoch)
        rng.shuffle(idx)
        span = self.batch_size * self.pool
        out = []
        for p in range(0, len(idx), span):
            chunk = sorted(idx[p:p + span], key=lambda i: self.lengths[i])
            out.extend(chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        rng.shuffle(out)
        return out

    def __iter__(self):
        return iter(self.batches())

    def __len__(self):
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def make_loader(dataset: Encoded, batch_size: int, shuffle: bool, seed: int = 0, extra=None,
                **options) -> DataLoader:
    """Length-bucketed batches of ``dataset``, padded with the dataset's own pad id; ``extra``: see
    :class:`Collator`; ``options``: more ``DataLoader`` arguments (workers, pinned memory)."""
    sampler = LengthBucketSampler(dataset.lengths(), batch_size, shuffle=shuffle, seed=seed)
    # an own generator: iterating the loader must not draw from the global RNG (exact resume)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=Collator(dataset.pad_token_id, extra),
                      generator=torch.Generator().manual_seed(seed), **options)


def encode_examples(tokenizer, examples, max_length: int = MAX_LENGTH) -> Encoded:
    """Task examples (text, label) as an :class:`Encoded` dataset."""
    return Encoded(tokenize(tokenizer, [ex.text for ex in examples], max_length), [ex.label for ex in examples],
                   pad_id(tokenizer))
