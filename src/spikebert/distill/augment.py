"""Data augmentation for task distillation, after TinyBERT and Tang et al. (2019).

Each augmented copy of a sentence is made word by word (words: whitespace tokens; for text
without spaces, e.g. Chinese, characters): with probability ``p_mask`` a word becomes the mask
token, with ``p_replace`` it is replaced by one of its ``k`` nearest neighbours in the teacher's
input-embedding space (words that are a single vocabulary entry), and then with probability
``p_ngram`` the copy is cut down to a random n-gram (n from 1 to 5). Copies equal to the original
or to each other are dropped. Augmented texts carry no hard label: they are learnt from the
teacher's soft labels only (the reference gives them random hard labels).

The augmented set is a pure function of (texts, seed, settings) and is cached as JSON lines.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict
from pathlib import Path

import torch

from spikebert.distill.config import AugmentConfig  # noqa: F401 (the settings; re-exported)
from spikebert.training.checkpoint import atomic_write_text


class NeighbourTable:
    """Nearest neighbours of whole-word vocabulary entries by cosine similarity of the teacher's
    input embeddings."""

    def __init__(self, tokenizer, embeddings: torch.Tensor, k: int = 8):
        vocab = tokenizer.get_vocab()
        special = set(tokenizer.all_special_tokens)
        words = [(w, i) for w, i in vocab.items()
                 if w not in special and not w.startswith("##") and not (w.startswith("[") and w.endswith("]"))
                 and any(ch.isalpha() for ch in w)]
        words.sort(key=lambda x: x[1])
        self.words = [w for w, _ in words]
        self.index = {w: n for n, w in enumerate(self.words)}
        ids = torch.tensor([i for _, i in words])
        e = torch.nn.functional.normalize(embeddings[ids].float(), dim=-1)
        self.k = k
        self._e = e
        self._cache: dict[int, list[str]] = {}

    def of(self, word: str) -> list[str]:
        n = self.index.get(word)
        if n is None:
            return []
        if n not in self._cache:
            sims = self._e @ self._e[n]
            sims[n] = -2.0
            top = torch.topk(sims, self.k).indices.tolist()
            self._cache[n] = [self.words[j] for j in top]
        return self._cache[n]


def _words(text: str) -> tuple[list[str], str]:
    if " " in text.strip():
        return text.split(), " "
    return list(text), ""


def augment_text(text: str, rng: random.Random, cfg: AugmentConfig, table: NeighbourTable, mask_token: str,
                 lowercase: bool) -> str:
    words, joiner = _words(text)
    out = []
    for w in words:
        r = rng.random()
        if r < cfg.p_mask:
            out.append(mask_token)
        elif r < cfg.p_mask + cfg.p_replace:
            options = table.of(w.lower() if lowercase else w)
            out.append(rng.choice(options) if options else w)
        else:
            out.append(w)
    if len(out) > 1 and rng.random() < cfg.p_ngram:
        n = rng.randint(1, min(cfg.max_ngram, len(out)))
        start = rng.randint(0, len(out) - n)
        out = out[start:start + n]
    return joiner.join(out)


def augment(texts: list[str], tokenizer, embeddings: torch.Tensor, cfg: AugmentConfig,
            cache_dir: str | Path | None = None) -> list[str]:
    """``cfg.copies`` augmented texts per input text (fewer where duplicates were dropped)."""
    key = hashlib.sha256(json.dumps([asdict(cfg), len(texts), texts[:50], texts[-50:],
                                     tokenizer.name_or_path.rstrip("/").split("/")[-1],
                                     len(tokenizer)]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"augmented-{key}.jsonl" if cache_dir else None
    if cache is not None and cache.exists():
        return [json.loads(ln) for ln in cache.read_text(encoding="utf-8").splitlines()]
    if cfg.copies <= 0:
        return []
    table = NeighbourTable(tokenizer, embeddings, cfg.neighbours)
    lowercase = bool(getattr(tokenizer, "do_lower_case", False) or tokenizer("A")["input_ids"] == tokenizer("a")["input_ids"])
    rng = random.Random(cfg.seed)
    out = []
    from tqdm.auto import tqdm

    for text in tqdm(texts, desc="augment", leave=False):
        seen = {text}
        for _ in range(cfg.copies):
            new = augment_text(text, rng, cfg, table, tokenizer.mask_token, lowercase)
            if new.strip() and new not in seen:
                seen.add(new)
                out.append(new)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in out))
    return out
