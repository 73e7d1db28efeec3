"""Data augmentation for task distillation, after TinyBERT and Tang et al. (2019).

Each augmented copy of a sentence is made word by word (words: whitespace tokens; for text
without spaces, e.g. Chinese, characters): with probability ``p_mask`` a word becomes the
tokenizer's own mask token (``[MASK]`` for BERT, ``<mask>`` for RoBERTa and MPNet), with
``p_replace`` it is replaced by one of its ``k`` nearest neighbours in the teacher's
input-embedding space (words that are a single vocabulary entry beginning a word, told from word
pieces by the tokenizer's convention: WordPiece ``##`` continuations, byte-level BPE ``Ġ`` or
SentencePiece ``▁`` word starts; see :class:`PieceScheme`), and then with probability
``p_ngram`` the copy is cut down to a random n-gram (n from 1 to 5). Copies equal to the original
or to each other are dropped. Augmented texts carry no hard label: they are learnt from the
teacher's soft labels only (the reference gives them random hard labels).

The augmented set is a pure function of (texts, seed, settings) and is cached as JSON lines
(``augmented-KEY.jsonl``, with its manifest ``augmented-KEY.manifest.json`` written after it); a
cache that does not verify, or has no manifest (an older version's), is made again.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from spikebert.distill.config import AugmentConfig  # noqa: F401 (the settings; re-exported)
from spikebert.training.checkpoint import atomic_write_text
from spikebert.training.manifest import usable_cache, verify, write_manifest


@dataclass(frozen=True)
class PieceScheme:
    """How a tokenizer marks word boundaries in its vocabulary, so that whole words can be told
    from pieces of words whatever the family:

    - ``wordpiece`` (BERT, MPNet, ELECTRA): a piece that continues a word starts with ``##``;
      every other entry can begin a word, as written;
    - ``bytelevel`` (RoBERTa, GPT-2 BPE): an entry that begins a word (after a space) starts with
      ``Ġ`` (the byte-level form of the space); its surface form is the entry decoded;
    - ``metaspace`` (SentencePiece: XLM-R, ALBERT, DeBERTa-v3): a word start is marked ``▁``.

    Read from the fast tokenizer's own description (its model and pre-tokenizer); a slow tokenizer
    is probed instead."""

    kind: str
    word_start: str = ""  # the mark of an entry that begins a word ("Ġ", "▁"); "" for WordPiece
    continuation: str = ""  # the mark of an entry that continues a word ("##"); "" otherwise

    @classmethod
    def of(cls, tokenizer) -> "PieceScheme":
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            desc = json.loads(backend.to_str())
            model = desc.get("model") or {}
            parts = _components(desc.get("pre_tokenizer")) + _components(desc.get("decoder"))
            if any(c.get("type") == "ByteLevel" for c in parts):
                return cls("bytelevel", word_start="Ġ")
            meta = [c for c in parts if c.get("type") == "Metaspace"]
            if meta:
                return cls("metaspace", word_start=meta[0].get("replacement") or "▁")
            prefix = model.get("continuing_subword_prefix")
            if model.get("type") == "WordPiece" or prefix:
                return cls("wordpiece", continuation=prefix or "##")
            return cls("wordpiece", continuation="##")
        # a slow tokenizer: how does the second of two words come out?
        pieces = tokenizer.tokenize("a a")
        second = pieces[-1] if pieces else ""
        for mark, kind in (("Ġ", "bytelevel"), ("▁", "metaspace")):
            if second.startswith(mark):
                return cls(kind, word_start=mark)
        return cls("wordpiece", continuation="##")

    def word(self, entry: str, tokenizer) -> str | None:
        """The surface word a vocabulary entry stands for when it begins a word, else None."""
        if self.kind == "wordpiece":
            return None if entry.startswith(self.continuation) else entry
        if not entry.startswith(self.word_start):
            return None
        if self.kind == "metaspace":
            return entry[len(self.word_start):]
        text = tokenizer.convert_tokens_to_string([entry])  # byte-level: decode the bytes
        return None if "\ufffd" in text else text.strip()


def _components(part) -> list[dict]:
    """A pre-tokenizer or decoder description and, for a sequence, its members."""
    if not part:
        return []
    inner = part.get("pretokenizers") or part.get("decoders") or []
    return [part] + [c for p in inner for c in _components(p)]


class NeighbourTable:
    """Nearest neighbours of whole-word vocabulary entries by cosine similarity of the teacher's
    input embeddings. Whole words are told from word pieces by the tokenizer's own convention
    (:class:`PieceScheme`); words are looked up, and neighbours given, in their surface form
    (``good``, not ``Ġgood``)."""

    def __init__(self, tokenizer, embeddings: torch.Tensor, k: int = 8, scheme: PieceScheme | None = None):
        self.scheme = scheme or PieceScheme.of(tokenizer)
        special = set(tokenizer.all_special_tokens)
        words: dict[str, int] = {}
        for entry, i in sorted(tokenizer.get_vocab().items(), key=lambda x: x[1]):
            if entry in special or i >= len(embeddings) or (entry.startswith("[") and entry.endswith("]")):
                continue
            w = self.scheme.word(entry, tokenizer)
            if w and not any(ch.isspace() for ch in w) and any(ch.isalpha() for ch in w) and w not in words:
                words[w] = i
        self.words = list(words)
        self.index = {w: n for n, w in enumerate(self.words)}
        self.ids = list(words.values())  # each word's vocabulary id (its word-start entry)
        ids = torch.tensor(self.ids, dtype=torch.long)
        e = torch.nn.functional.normalize(embeddings[ids].float(), dim=-1)
        self.k = min(k, max(0, len(self.words) - 1))
        self._e = e
        self._cache: dict[int, list[str]] = {}

    def of(self, word: str) -> list[str]:
        n = self.index.get(word)
        if n is None or self.k == 0:
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


def augment_text(text: str, rng: random.Random, cfg: AugmentConfig, table: NeighbourTable, mask_token: str | None,
                 lowercase: bool) -> str:
    words, joiner = _words(text)
    out = []
    for w in words:
        r = rng.random()
        if r < cfg.p_mask:
            out.append(mask_token if mask_token is not None else w)
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


def mask_token(tokenizer) -> str | None:
    """The tokenizer's own mask token (``[MASK]``, ``<mask>``...), else its unknown token; None
    when it has neither (masking then keeps the word)."""
    return tokenizer.mask_token or tokenizer.unk_token or None


def vocabulary_digest(tokenizer) -> str:
    """A short hash of the vocabulary (entries and ids): two tokenizers that share a folder name
    never share an augmentation cache."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda x: x[1])
    return hashlib.sha256("\n".join(f"{i} {w}" for w, i in vocab).encode()).hexdigest()[:16]


def augment(texts: list[str], tokenizer, embeddings: torch.Tensor, cfg: AugmentConfig,
            cache_dir: str | Path | None = None) -> list[str]:
    """``cfg.copies`` augmented texts per input text (fewer where duplicates were dropped)."""
    mask = mask_token(tokenizer)
    key = hashlib.sha256(json.dumps([asdict(cfg), len(texts), texts[:50], texts[-50:],
                                     tokenizer.name_or_path.rstrip("/").split("/")[-1],
                                     len(tokenizer), mask, vocabulary_digest(tokenizer)]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"augmented-{key}.jsonl" if cache_dir else None
    manifest = f"augmented-{key}.manifest.json"
    if cache is not None and usable_cache(cache, lambda: verify(cache.parent, manifest), "augmented texts"):
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
            new = augment_text(text, rng, cfg, table, mask, lowercase)
            if new.strip() and new not in seen:
                seen.add(new)
                out.append(new)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in out))
        write_manifest(cache.parent, [cache.name], manifest)
    return out
