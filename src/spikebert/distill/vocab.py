"""A stage-1 student handed to a stage-2 teacher other than the one it learned from.

Stage 1 is the costly stage and is shared by every task of a language; stage 2 may want a larger
teacher (``spikebert run --teacher mpnet``). The student's hidden-state and embedding terms are
per token, so the two tokenizers must split every text into the same pieces. Many do: the MPNet's
vocabulary is BERT's uncased one behind four special tokens (``<s> <pad> </s> <unk>``, and
``<mask>`` last), and it splits every SST-2, MR, Subj and SST-5 sentence as BERT does.

:func:`to_teacher_vocabulary` then re-indexes the student's embedding rows to the teacher's token
ids (the same string, or the same role for special tokens: ``[CLS]`` is ``<s>``), after checking on
the training texts that the two tokenizers agree, and re-sizes the student's feature projections
to the teacher's width (they map onto the stage-1 teacher's hidden states and start afresh). When
the tokenizers disagree it is one error naming both: stage 1 must then learn from this teacher.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from spikebert.errors import SpikeBertError

# special tokens matched by role, not by string; a family without a role (bos in BERT) falls
# back to the role that plays its part (cls)
ROLES = ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token")
FALLBACK = {"bos_token": "cls_token", "eos_token": "sep_token"}
# the share of training texts both tokenizers must split alike (and that checking reads)
MIN_AGREEMENT = 0.99
CHECK_TEXTS = 2000


def token_index(student_tok, teacher_tok, teacher_vocab_size: int) -> tuple[list[int | None], dict[int, int]]:
    """For each teacher token id, the student's id of the same token (None when it has none), and
    the student-to-teacher map of the ids found."""
    student_vocab = student_tok.get_vocab()
    index: list[int | None] = [None] * teacher_vocab_size
    for role in ROLES + tuple(FALLBACK):
        t, s = getattr(teacher_tok, role, None), getattr(student_tok, role, None) or \
            getattr(student_tok, FALLBACK.get(role, ""), None)
        if t is not None and s is not None:
            t_id = teacher_tok.convert_tokens_to_ids(t)
            if t_id < teacher_vocab_size and index[t_id] is None:
                index[t_id] = student_vocab.get(s)
    for token, t_id in teacher_tok.get_vocab().items():
        if t_id < teacher_vocab_size and index[t_id] is None:
            index[t_id] = student_vocab.get(token)
    back: dict[int, int] = {}
    for t_id, s_id in enumerate(index):
        if s_id is not None:
            back.setdefault(s_id, t_id)
    return index, back


def agreement(student_tok, teacher_tok, back: dict[int, int], texts: list[str], seed: int = 0) -> float:
    """The share of ``texts`` (a seeded sample of :data:`CHECK_TEXTS`) that the two tokenizers
    split into the same tokens, the student's ids read through ``back``."""
    sample = texts if len(texts) <= CHECK_TEXTS else random.Random(seed).sample(texts, CHECK_TEXTS)
    if not sample:
        return 1.0
    s_ids = student_tok(sample, add_special_tokens=True, truncation=False)["input_ids"]
    t_ids = teacher_tok(sample, add_special_tokens=True, truncation=False)["input_ids"]
    same = sum(1 for s, t in zip(s_ids, t_ids) if [back.get(i, -1) for i in s] == t)
    return same / len(sample)


def split_alike(student_tok, teacher_tok, texts: list[str]) -> bool:
    """Whether the two tokenizers split (a sample of) ``texts`` alike, special tokens matched by
    role: a stage-1 student of the one can then learn stage 2 from a teacher of the other."""
    _, back = token_index(student_tok, teacher_tok, len(teacher_tok))
    return agreement(student_tok, teacher_tok, back, texts) >= MIN_AGREEMENT


def to_teacher_vocabulary(student, student_tok, teacher_config, teacher_tok, texts: list[str],
                          student_name: str, teacher_name: str) -> dict:
    """Make the stage-1 ``student`` read the teacher's token ids and project onto its width, in
    place; returns what was done (for ``metrics.json``; empty when nothing needed doing). Raises one :class:`SpikeBertError` when the
    tokenizers split ``texts`` differently."""
    width = teacher_config.hidden_size
    record: dict = {}
    if student.config.vocab_size != teacher_config.vocab_size or student_tok.get_vocab() != teacher_tok.get_vocab():
        index, back = token_index(student_tok, teacher_tok, teacher_config.vocab_size)
        share = agreement(student_tok, teacher_tok, back, texts)
        if share < MIN_AGREEMENT:
            raise SpikeBertError(
                f"the stage-1 student ({student_name}) and the teacher ({teacher_name}) split "
                f"{(1 - share) * 100:.1f} % of the training texts differently, so their per-token features "
                f"cannot be matched: distil stage 1 from this teacher (or one with its tokenizer)")
        old = student.get_input_embeddings().weight.detach()
        found = torch.tensor([i is not None for i in index])
        rows = torch.tensor([i if i is not None else 0 for i in index])
        weight = torch.where(found[:, None], old[rows], old.mean(0, keepdim=True))
        student.set_input_embeddings(nn.Embedding.from_pretrained(weight.clone(), freeze=False))
        student.config.vocab_size = teacher_config.vocab_size
        student.config.pad_token_id = teacher_tok.pad_token_id
        record |= {"from_tokenizer": student_name, "tokens": len(index), "tokens_without_student_row": int((~found).sum()),
                   "texts_split_alike": round(share, 4), "texts_checked": min(len(texts), CHECK_TEXTS)}
    if student.config.teacher_hidden_size != width:
        record["projections"] = f"new, onto width {width} (stage 1's teacher: {student.config.teacher_hidden_size})"
        student.reset_distill_transforms(width)
    return record
