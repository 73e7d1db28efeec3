"""Attention distillation (``--w-attn``, after TinyBERT): the student's per-head attention maps learn
the teacher's in the matched layers.

The student's map of a head is its spike score matrix Q·Kᵀ averaged over the T steps
(``output_attentions=True`` of :class:`~spikebert.modeling_spikebert.SpikeBertModel`; padded keys
score 0), a count of coincident spikes, not a distribution: it has no softmax. The teacher's is
its attention probabilities (``output_attentions``; each row sums to 1 over the real keys). The
two are compared as distributions over the real keys:

- ``rownorm`` (the default, :data:`ATTN_NORM`): each student row divided by its sum, the share of
  the value rows a query reads, which is what the student's (Q·Kᵀ)·V does with them. A query that
  fires no coincident spike (a row sum of 0) reads nothing and has no distribution: its row is
  left out of the loss.
- ``softmax``: a softmax of the scores over the real keys, at the teacher's 1/√(head width).

The loss of a matched (student block, teacher layer) pair is Σ_keys (p_student − p_teacher)²,
averaged over the heads and the real query rows counted (so a row's error is on the scale of
distributions, whatever the sentence length); the pairs' losses are summed, as the feature terms
are. Heads are matched one to one: the teacher's head h to the student's head h (a student of
another head count is one error).
"""

from __future__ import annotations

import torch

from spikebert.distill.config import LayerMap
from spikebert.errors import SpikeBertError

ATTN_NORMS = ("rownorm", "softmax")
ATTN_NORM = "rownorm"


def check_heads(student_config, teacher_config, teacher: str = "the teacher") -> None:
    """The student's heads must be the teacher's, one to one."""
    s, t = student_config.num_attention_heads, teacher_config.num_attention_heads
    if s != t:
        raise SpikeBertError(f"--w-attn: the student has {s} attention heads, the teacher {teacher} {t}; attention "
                             f"maps are matched head to head (give --heads {t}, or --w-attn 0)")


def attending(teacher, name: str = "the teacher"):
    """``teacher`` set to compute its attention probabilities in the open (the eager attention
    of ``transformers``; the fused kernels return none), or one error for a model that cannot."""
    try:
        teacher.set_attn_implementation("eager")
    except Exception as e:  # noqa: BLE001 - any refusal is the same answer for the user
        raise SpikeBertError(f"--w-attn: the teacher {name} ({teacher.config.model_type}) cannot return its "
                             f"attention maps ({e}); use --w-attn 0") from None
    return teacher


def teacher_attentions(out, layers, name: str = "the teacher") -> dict[int, torch.Tensor]:
    """``{teacher layer (1-based): [B, H, L, L]}`` of a teacher's output called with
    ``output_attentions=True``; one error when the output carries none."""
    maps = getattr(out, "attentions", None)
    if not maps:
        raise SpikeBertError(f"--w-attn: the teacher {name} returned no attention maps; use --w-attn 0")
    return {t: maps[t - 1] for t in layers}


def attention_layers(layer_map: LayerMap) -> tuple[int, ...]:
    """The teacher layers whose attention maps the loss reads (layer 0, the embeddings, has none)."""
    return tuple(sorted({t for _, t in layer_map.pairs if t >= 1}))


def normalised(scores: torch.Tensor, keys: torch.Tensor, head_width: int,
               norm: str = ATTN_NORM) -> tuple[torch.Tensor, torch.Tensor]:
    """The student's rows ``[B, H, L, L]`` as distributions over the real keys (``keys``
    ``[B, 1, 1, L]``, 1 for a real key), and which rows have one (``[B, H, L]``)."""
    if norm == "rownorm":
        scores = scores * keys
        total = scores.sum(-1)
        return scores / total.unsqueeze(-1).clamp(min=1e-6), total > 0
    if norm == "softmax":
        p = (scores / head_width ** 0.5).masked_fill(keys == 0, float("-inf")).softmax(-1)
        return p.nan_to_num(0.0), torch.ones(scores.shape[:-1], dtype=torch.bool, device=scores.device)
    raise ValueError(f"attention norm must be one of {ATTN_NORMS}, not {norm!r}")


def attention_loss(student_maps, teacher_maps: dict, layer_map: LayerMap, mask: torch.Tensor | None,
                   head_width: int, norm: str = ATTN_NORM) -> torch.Tensor:
    """Σ over matched pairs of the per-row squared distance of the student's attention rows to the
    teacher's (module docstring). ``student_maps``: per student block ``[B, H, L, L]``;
    ``teacher_maps``: ``{teacher layer: [B, H, L, L]}``; ``mask`` ``[B, L]``; ``head_width``: the
    student's (the softmax's scale)."""
    first = student_maps[0]
    if mask is None:
        mask = torch.ones(first.shape[0], first.shape[-1], device=first.device)
    m = mask.to(first.dtype)
    keys, queries = m[:, None, None, :], m[:, None, :]
    total = first.new_zeros(())
    for s, t in layer_map.pairs:
        if t < 1:
            continue
        p, has_row = normalised(student_maps[s - 1], keys, head_width, norm)
        target = teacher_maps[t].to(p.dtype) * keys
        rows = queries * has_row.to(p.dtype)
        err = ((p - target).square().sum(-1) * rows).sum()
        total = total + err / rows.sum().clamp(min=1.0)
    return total
