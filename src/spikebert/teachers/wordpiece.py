"""Training a WordPiece tokenizer of one's own (``spikebert tokenizer train``).

Where no pretrained BERT (and so no vocabulary) can be installed, e.g. for Chinese, the teacher
is pre-trained from scratch (:mod:`spikebert.teachers.pretrain`) and needs a tokenizer first. It is built
the way Google's BERT tokenizers are, with Hugging Face ``tokenizers``:

- ``BertNormalizer`` (clean control characters, optional lowercasing with accent stripping, and
  ``handle_chinese_chars=True``: a space around every CJK ideograph, so Chinese text becomes one
  token a character, as in ``bert-base-chinese``);
- ``BertPreTokenizer`` (split on whitespace and punctuation);
- a ``WordPiece`` model with ``##`` continuation pieces for the Latin words and numbers;
- special tokens ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4`` and the BERT post-processor
  (``[CLS] A [SEP]`` / ``[CLS] A [SEP] B [SEP]``).

The result is a standard ``transformers`` tokenizer folder (``tokenizer.json``,
``tokenizer_config.json`` and ``vocab.txt``) that ``AutoTokenizer.from_pretrained`` loads offline.

Default vocabulary: 8000. The two zh corpora (4.6 M characters) hold 5,356 distinct characters,
5,052 of them CJK ideographs, and the most frequent 3,000 cover 99.7 % of the text. 8000 keeps
every character seen at least twice plus ~2,700 pieces for Latin words and numbers; larger sizes
only add rare Latin/number pieces while the embedding matrix and the masked-LM softmax, a large
part of a small teacher's cost on CPU, grow with them (``bert-base-chinese``'s 21,128 would
make the embeddings larger than a 4-layer, 256-wide encoder). Raise ``--vocab-size`` for a
corpus with more distinct characters (traditional + simplified, much English).
"""

from __future__ import annotations

from pathlib import Path

from spikebert.training.checkpoint import atomic_write_text, write_json
from spikebert.errors import SpikeBertError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DEFAULT_VOCAB_SIZE = 8000
MODEL_MAX_LENGTH = 512


def build_backend(lowercase: bool = True):
    """An untrained BERT-style ``tokenizers.Tokenizer`` (normalizer, pre-tokenizer, decoder)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece

    tok = Tokenizer(WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def train_wordpiece(texts: list[str], vocab_size: int = DEFAULT_VOCAB_SIZE, lowercase: bool = True,
                    min_frequency: int = 2, show_progress: bool = False):
    """A ``transformers`` BERT tokenizer trained on ``texts``."""
    from tokenizers import processors, trainers
    from transformers import BertTokenizerFast

    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise SpikeBertError(f"--vocab-size {vocab_size} is too small (at least {len(SPECIAL_TOKENS) + 1})")
    if not texts:
        raise SpikeBertError("no text to train the tokenizer on")
    tok = build_backend(lowercase)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), continuing_subword_prefix="##",
                                        show_progress=show_progress)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    if [ids[t] for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):  # pragma: no cover - trainer contract
        raise SpikeBertError(f"special tokens got unexpected ids {ids}")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=lowercase, tokenize_chinese_chars=True,
                             strip_accents=None, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]", model_max_length=MODEL_MAX_LENGTH)


def vocab_text(tokenizer) -> str:
    """``vocab.txt``: one token a line, line number = id (the classic BERT vocabulary file)."""
    vocab = tokenizer.get_vocab()
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise SpikeBertError("the vocabulary ids are not contiguous; cannot write vocab.txt")
    return "".join(t + "\n" for t, _ in by_id)


def save_tokenizer(tokenizer, out) -> Path:
    """``save_pretrained`` plus ``vocab.txt`` (transformers 5 writes only ``tokenizer.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    atomic_write_text(out / "vocab.txt", vocab_text(tokenizer))
    return out


def train_tokenizer(texts: list[str], output, vocab_size: int = DEFAULT_VOCAB_SIZE, lowercase: bool = True,
                    sources: list[str] | None = None, show_progress: bool = False) -> dict:
    """Train, save into ``output`` and return a summary (also written as ``tokenizer_info.json``)."""
    import time

    from spikebert.training.checkpoint import check_output_dir

    check_output_dir(output)
    t0 = time.time()
    tokenizer = train_wordpiece(texts, vocab_size, lowercase, show_progress=show_progress)
    save_tokenizer(tokenizer, output)
    vocab = tokenizer.get_vocab()
    single = sum(1 for t in vocab if len(t) == 1)
    info = {"kind": "wordpiece", "vocab_size": len(vocab), "vocab_size_asked": vocab_size,
            "single_characters": single, "continuation_pieces": sum(1 for t in vocab if t.startswith("##")),
            "lowercase": lowercase, "texts": len(texts), "sources": sources or [],
            "seconds": round(time.time() - t0, 1)}
    write_json(Path(output) / "tokenizer_info.json", info)
    return info
