"""Masked-language-model pre-training of a small BERT teacher from scratch (``spikebert teacher pretrain``).

For a language with no pretrained BERT that can be installed here (Chinese: the hub is out of
reach and no PyPI package ships a Chinese BERT), the teacher is pre-trained on the unlabelled
corpus with a tokenizer from :mod:`spikebert.teachers.wordpiece`, then fine-tuned like any other
(``spikebert teacher finetune --teacher DIR``).

Model: ``transformers.BertForMaskedLM`` from a ``BertConfig`` sized by the flags. The default,
4 layers, width 256, 4 heads, feed-forward 1024, is Google's "BERT-mini" shape (Turc et al.
2019, "Well-Read Students Learn Better"): the smallest of their compact BERTs that still
fine-tunes well on sentence classification. On this 2-core CPU it is the size that sees a useful
part of the 73k-line zh corpus in tens of minutes rather than days: with an 8000-piece vocabulary
it has ~5 M weights, about 6 MFLOP a token forward; a BERT-base (110 M, ~170 MFLOP a token) would
take ~30× as long a step. The student is shaped like the teacher by default, and a 256-wide
student is also cheap to distil.

Masking is BERT's (as ``DataCollatorForLanguageModeling``): 15 % of the non-special tokens of a
text are chosen; of those, 80 % become ``[MASK]``, 10 % a random token and 10 % stay. The choice
is a pure function of (seed, epoch, text index): a per-text ``torch.Generator`` is seeded from
them, so a resumed run masks exactly what an uninterrupted one would, whatever the number of
processes, and every epoch masks a text anew (dynamic masking, as RoBERTa). A text with no token
chosen gets one (its lowest draw), so no row is wasted. The MLM head runs on the masked
positions only, which saves ~85 % of the vocabulary projection at the same loss.

A seeded slice of the corpus (``eval_texts``, default 512, at most a tenth) is held out; its
masked-LM loss (fixed masks) is measured every ``eval_every`` steps and the best model kept. The
trainer's score is ``exp(-loss)`` = 1/perplexity: ordered exactly as ``-loss``, and a number in
(0, 1] as the trainer's progress line expects.

The output is a standard BERT folder (``BertForMaskedLM`` weights in ``model.safetensors``,
``config.json``, tokenizer files with ``vocab.txt``, ``metrics.json``, ``log.jsonl``).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from spikebert.data.batching import EVAL_BATCH_SIZE, MAX_LENGTH, Collator, Encoded, pad_id, tokenize
from spikebert.training.checkpoint import publish_model
from spikebert.errors import SpikeBertError
from spikebert.training.plots import finish_job
from spikebert.training.trainer import TrainArgs, fit, last_logged, make_accelerator

PRETRAIN_DEFAULTS = dict(epochs=None, lr=5e-4, batch_size=32, warmup=0.06, schedule="linear", save_every=200,
                         eval_every=200)
DEFAULT_SHAPE = dict(layers=4, hidden=256, heads=4, intermediate=None)  # intermediate: 4 × hidden
MASK_PROB = 0.15
EVAL_TEXTS = 512
EVAL_EPOCH = 1 << 20  # the held-out masks are drawn as if in this epoch: fixed, unlike training's


# ---------------------------------------------------------------------------------------------
# Corpus


def pretraining_texts(corpus: list[str] | None, limit: int | None = None, add_task_texts: list[str] | None = None,
                      data_dir=None) -> tuple[list[str], dict]:
    """Corpus lines (``limit`` at most) plus the *train* split texts of the tasks named, and a
    summary ``{"corpus": [files], "corpus_texts": n, "task_train_texts": {task: n}}``.

    Only train texts: dev (and test) texts must stay unseen by anything the student learns from.
    """
    from spikebert.data.tasks import load_data
    from spikebert.distill.stages import read_corpus

    texts: list[str] = []
    sources: dict = {}
    if corpus:
        texts = read_corpus([str(c) for c in corpus], limit)
        sources["corpus"] = [str(c) for c in corpus]
        sources["corpus_texts"] = len(texts)
    for task in add_task_texts or []:
        data = load_data(task, "train", data_dir)
        texts.extend(ex.text for ex in data.examples)
        sources.setdefault("task_train_texts", {})[task] = len(data.examples)
    if not texts:
        raise SpikeBertError("no text: give --corpus FILE and/or --add-task-texts TASK")
    return texts, sources


def holdout_split(n: int, eval_texts: int, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, held-out) indices; the held-out part is at most a tenth of the texts."""
    k = min(eval_texts, n // 10)
    if k <= 0:
        return list(range(n)), []
    held = set(random.Random(seed * 7919 + 17).sample(range(n), k))
    return [i for i in range(n) if i not in held], sorted(held)


# ---------------------------------------------------------------------------------------------
# Masking


def _row_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 10_000_019 + index) % (1 << 62)


class Masker:
    """BERT masking, deterministic per (seed, epoch, text index)."""

    def __init__(self, tokenizer, seed: int, prob: float = MASK_PROB):
        vocab_size = len(tokenizer)
        special = torch.zeros(vocab_size, dtype=torch.bool)
        special[[i for i in tokenizer.all_special_ids if i is not None and i < vocab_size]] = True
        if tokenizer.mask_token_id is None:
            raise SpikeBertError("the tokenizer has no [MASK] token: it cannot be used for masked-LM pre-training")
        self.special, self.seed, self.prob = special, seed, prob
        self.mask_id = tokenizer.mask_token_id
        self.candidates = torch.nonzero(~special).flatten()  # random replacements: any ordinary token

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, index: torch.Tensor, epoch: int):
        """(masked input ids, labels with -100 where nothing is to be predicted)."""
        ids = input_ids.clone()
        labels = torch.full_like(input_ids, -100)
        for r in range(ids.shape[0]):
            n = int(attention_mask[r].sum())
            row = input_ids[r, :n].cpu()
            g = torch.Generator().manual_seed(_row_seed(self.seed, epoch, int(index[r])))
            draw = torch.rand(n, generator=g)
            kind = torch.rand(n, generator=g)
            rand_tok = self.candidates[torch.randint(len(self.candidates), (n,), generator=g)]
            ok = ~self.special[row]
            if not ok.any():
                continue
            chosen = (draw < self.prob) & ok
            if not chosen.any():
                chosen[torch.where(ok, draw, torch.full_like(draw, 2.0)).argmin()] = True
            new = row.clone()
            new[chosen & (kind < 0.8)] = self.mask_id
            swap = chosen & (kind >= 0.8) & (kind < 0.9)
            new[swap] = rand_tok[swap]
            ids[r, :n] = new.to(ids.device)
            labels[r, :n] = torch.where(chosen, row, torch.full_like(row, -100)).to(ids.device)
        return ids, labels


class MaskedLM(torch.nn.Module):
    """The trainable: a ``BertForMaskedLM`` whose head sees only the masked positions."""

    def __init__(self, mlm):
        super().__init__()
        self.mlm = mlm

    def forward(self, input_ids, attention_mask, labels):
        hidden = self.mlm.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        where = labels != -100
        logits = self.mlm.cls(hidden[where])
        target = labels[where]
        loss = F.cross_entropy(logits.float(), target, reduction="sum")
        correct = (logits.argmax(-1) == target).sum()
        return loss, correct, target.numel()


def bert_config(vocab_size: int, pad_token_id: int, layers: int | None = None, hidden: int | None = None,
                heads: int | None = None, intermediate: int | None = None, max_position_embeddings: int = 512):
    from transformers import BertConfig

    layers = DEFAULT_SHAPE["layers"] if layers is None else layers
    hidden = DEFAULT_SHAPE["hidden"] if hidden is None else hidden
    heads = DEFAULT_SHAPE["heads"] if heads is None else heads
    intermediate = 4 * hidden if intermediate is None else intermediate
    for name, v in (("--layers", layers), ("--hidden", hidden), ("--heads", heads), ("--intermediate", intermediate)):
        if v < 1:
            raise SpikeBertError(f"{name} must be at least 1, not {v}")
    if hidden % heads:
        raise SpikeBertError(f"--hidden {hidden} is not a multiple of --heads {heads}")
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=intermediate, max_position_embeddings=max_position_embeddings,
                      pad_token_id=pad_token_id, type_vocab_size=2, architectures=["BertForMaskedLM"])


@torch.no_grad()
def heldout_loss(trainable: MaskedLM, data: Encoded, masker: Masker, pad_token_id: int, batch_size: int = EVAL_BATCH_SIZE,
                 device=None) -> dict:
    """Masked-LM loss and accuracy on held-out texts, with fixed masks."""
    was_training = trainable.training
    trainable.eval()
    collate = Collator(pad_token_id)
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    total, correct, count = 0.0, 0, 0
    for b in range(0, len(order), batch_size):
        batch = collate([data[i] for i in order[b:b + batch_size]])
        if device is not None:
            batch = {k: v.to(device) for k, v in batch.items()}
        ids, labels = masker(batch["input_ids"], batch["attention_mask"], batch["index"], EVAL_EPOCH)
        loss, right, n = trainable(ids, batch["attention_mask"], labels)
        total, correct, count = total + float(loss), correct + int(right), count + n
    trainable.train(was_training)
    loss = total / max(count, 1)
    return {"score": math.exp(-loss), "loss": loss, "perplexity": math.exp(min(loss, 50.0)),
            "mlm_accuracy": correct / max(count, 1), "masked_tokens": count,
            "text": f"MLM loss {loss:.3f}, masked-token accuracy {correct / max(count, 1):.1%}"}


# ---------------------------------------------------------------------------------------------
# The job


def _checked_tokenizer(tokenizer_dir: str, max_length: int):
    """The pre-training tokenizer, or one clear error for a missing folder or a length out of range."""
    from spikebert.folders import load_tokenizer

    if not Path(tokenizer_dir).is_dir():
        raise SpikeBertError(f"{tokenizer_dir}: no such tokenizer folder (make one with `spikebert tokenizer train`)")
    if not 8 <= max_length <= 512:
        raise SpikeBertError(f"--max-length must be between 8 and 512, not {max_length}")
    return load_tokenizer(tokenizer_dir)


def pretrain_teacher(texts: list[str], tokenizer_dir: str, args: TrainArgs, shape: dict | None = None,
                     max_length: int = MAX_LENGTH, eval_texts: int = EVAL_TEXTS, sources: dict | None = None) -> dict:
    """Pre-train a ``BertForMaskedLM`` on ``texts``; publish the best (held-out loss) in ``args.output``."""
    from transformers import BertForMaskedLM

    from spikebert.teachers.wordpiece import vocab_text

    tokenizer = _checked_tokenizer(tokenizer_dir, max_length)
    acc = make_accelerator(args.seed)  # seeds torch: the initial weights are a function of --seed
    pad = pad_id(tokenizer)
    config = bert_config(len(tokenizer), pad, **{k: v for k, v in (shape or {}).items() if v is not None})
    model = BertForMaskedLM(config)
    trainable = MaskedLM(model)
    masker = Masker(tokenizer, args.seed)

    ids = tokenize(tokenizer, texts, max_length)
    train_idx, held_idx = holdout_split(len(ids), eval_texts, args.seed)
    train_set = Encoded([ids[i] for i in train_idx], pad_token_id=pad)
    held_set = Encoded([ids[i] for i in held_idx], pad_token_id=pad)

    def loss_fn(m, batch, step, epoch):
        # the masks are a function of (seed, text, epoch): the same in a resumed run, and the same
        # however the trainer splits a batch into micro-batches
        masked, labels = masker(batch["input_ids"], batch["attention_mask"], batch["index"], epoch)
        loss, correct, n = m(masked, batch["attention_mask"], labels)
        n = max(n, 1)
        return loss / n, {"mlm_accuracy": torch.tensor(int(correct) / n)}

    evaluate = None
    start = None
    if held_set.input_ids:
        start = heldout_loss(trainable, held_set, masker, pad, device=acc.device)

        def evaluate(m, accelerator):
            return heldout_loss(accelerator.unwrap_model(m), held_set, masker, pad, device=accelerator.device)

    best: dict = {}
    extra = {"vocab.txt": vocab_text(tokenizer)}

    def on_best(m, metrics):
        best.clear()
        best.update(metrics)
        publish_model(m.mlm, tokenizer, args.output, extra_files=extra)

    result = fit(trainable, train_set, args, loss_fn, evaluate, on_best, accelerator=acc, desc="teacher pretrain")
    n_params = sum(p.numel() for p in model.parameters())
    metrics = {"kind": "teacher_pretrain", "tokenizer": str(tokenizer_dir), "texts": len(texts),
               "train_texts": len(train_set), "heldout_texts": len(held_set), "sources": sources or {},
               "steps": result.step, "best_step": result.best_step, "stopped_by": result.stopped_by,
               "seconds": round(result.seconds, 1), "steps_per_second": None,
               "heldout_loss_at_start": start["loss"] if start else None,
               "heldout_loss": best.get("loss"), "heldout_perplexity": best.get("perplexity"),
               "heldout_mlm_accuracy": best.get("mlm_accuracy"), "final_train_loss": last_logged(args.output),
               "parameters": n_params, "bert": config.to_diff_dict(), "history": result.history,
               "args": {**asdict(args), "max_length": max_length, "eval_texts": eval_texts}}
    if result.seconds > 0:
        metrics["steps_per_second"] = round(result.step / result.seconds, 3)
    return finish_job(args.output, metrics, acc)

