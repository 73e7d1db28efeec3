"""Predictions from a saved classifier (SpikeBERT or a BERT teacher), for people and programs.

    from spikebert import Classifier
    clf = Classifier.from_pretrained("runs/sst2-student")
    clf.predict(["a gorgeous film", "dull"])
    # [{"label": "positive", "score": 0.93, "probabilities": {"negative": 0.07, "positive": 0.93}}, ...]

Texts are batched by length with dynamic padding (the model's logits do not depend on the batch);
label names come from the model's ``config.id2label``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from spikebert.data.batching import Encoded, make_loader, pad_id, tokenize
from spikebert.data.readers import read_delimited, read_jsonl, read_lines
from spikebert.data.batching import MAX_LENGTH
from spikebert.errors import SpikeBertError

BATCH_SIZE = 32  # texts a forward pass labels at once


class Classifier:
    """A loaded classifier with its tokenizer; :meth:`predict` labels texts."""

    def __init__(self, model, tokenizer, batch_size: int = BATCH_SIZE, max_length: int = MAX_LENGTH):
        if batch_size < 1:
            raise SpikeBertError(f"batch size must be >= 1 (got {batch_size})")
        vocab = getattr(model.config, "vocab_size", None)
        if vocab is not None and len(tokenizer) > vocab:
            raise SpikeBertError(f"the tokenizer has {len(tokenizer)} tokens, the model's vocabulary {vocab}: "
                                 "they do not belong together")
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions is not None and max_length > positions:
            raise SpikeBertError(f"max length {max_length} exceeds the model's {positions} positions")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_length = batch_size, max_length

    @classmethod
    def from_pretrained(cls, path, batch_size: int = BATCH_SIZE, max_length: int = MAX_LENGTH,
                        time_steps: int | None = None) -> "Classifier":
        """``time_steps``: run a SpikeBERT model at another T than it was saved with."""
        from spikebert.folders import load_classifier

        model, tokenizer = load_classifier(path, time_steps=time_steps)
        return cls(model, tokenizer, batch_size=batch_size, max_length=max_length)

    @property
    def labels(self) -> list[str]:
        """The class names, in class order (``config.id2label``; the id where a name is missing)."""
        id2label = self.model.config.id2label or {}
        return [str(id2label.get(i, id2label.get(str(i), i))) for i in range(self.model.config.num_labels)]

    @torch.no_grad()
    def probabilities(self, texts: list[str]) -> torch.Tensor:
        """``[len(texts), num_labels]`` class probabilities, in the order of ``texts``."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise SpikeBertError(f"text {i + 1} is empty" if isinstance(t, str) else
                                     f"text {i + 1} is a {type(t).__name__}, not a string")
        probs = torch.zeros(len(texts), self.model.config.num_labels)
        if not texts:
            return probs
        ids = tokenize(self.tokenizer, texts, max_length=self.max_length)
        for batch in make_loader(Encoded(ids, pad_token_id=pad_id(self.tokenizer)), self.batch_size, shuffle=False):
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            probs[batch["index"]] = logits.float().softmax(-1)
        return probs

    def predict(self, texts: list[str]) -> list[dict]:
        """For every text: ``{"label", "score", "probabilities": {label: p}}``."""
        names = self.labels
        out = []
        for p in self.probabilities(texts).tolist():
            best = max(range(len(p)), key=p.__getitem__)
            out.append({"label": names[best], "score": p[best], "probabilities": dict(zip(names, p))})
        return out

    __call__ = predict


def predict(model_dir, texts: list[str], batch_size: int = BATCH_SIZE, max_length: int = MAX_LENGTH) -> list[dict]:
    """One-shot :meth:`Classifier.predict` from a model folder."""
    return Classifier.from_pretrained(model_dir, batch_size=batch_size, max_length=max_length).predict(texts)


def read_texts(path, text_column: str = "text") -> list[str]:
    """Texts to label: ``.csv``/``.tsv``/``.jsonl`` read from ``text_column``, anything else one
    text a line (blank lines skipped); read by the same readers as task data."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = read_jsonl(path, (None, text_column))
    elif suffix in (".csv", ".tsv"):
        rows = read_delimited(path, "utf-8", "\t" if suffix == ".tsv" else ",", csv.QUOTE_MINIMAL, (None, text_column))
    else:
        rows = read_lines(path)
    texts = [text for _, _, text in rows]
    if not texts:
        raise SpikeBertError(f"{path}: no texts in the file")
    return texts
