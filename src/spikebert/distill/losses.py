"""Knowledge distillation from a teacher of any BERT-like encoder family (BERT, RoBERTa, MPNet, ...)
into a SpikeBERT student, in two stages.

Stage 1, pre-distillation (unlabelled text):
    loss = Σ_(i→j) MSE(transform_i(student block i, mean over T), teacher hidden state j)
Stage 2, task distillation (task texts plus augmented texts):
    loss = w_ce·CE(labels) + w_kl·τ²·KL(teacher ‖ student at temperature τ)
         + w_rep·Σ_(i→j) MSE(transform_i(student_i), teacher_j) + w_emb·MSE(E_student·P, E_teacher)
         + w_spikes·(mean firing rate of the student)   [0 by default]
         + w_energy·(the student's estimated energy / its teacher's, strict rule)   [0 by default]
         + w_attn·Σ_(i→j) distance(student attention maps i, teacher attention j)   [0 by default;
           stage 1 too; :mod:`spikebert.distill.attention`]
Direct training (the paper's baseline) is stage 2 with only the CE term and no teacher.

MSE terms average over real tokens only (padding excluded). Which student block learns from which
teacher layer is a :class:`LayerMap` (uniform spacing by default; any list of pairs by choice),
and the loss weights are a :class:`LossWeights`: both described by configuration, as in TextBrewer
(:mod:`spikebert.distill.config`, where every default is defined).
Hidden state 0 of the teacher is its embedding output, so teacher layers are numbered 1..depth.
"""

from __future__ import annotations

import re
from dataclasses import fields

import torch
import torch.nn.functional as F
from torch import nn

from spikebert.data.batching import pad_id
from spikebert.distill.config import DIRECT, STAGE1, LayerMap, LossWeights, StudentShape  # noqa: F401 (re-exported)
from spikebert.errors import SpikeBertError
from spikebert.modeling_spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
from spikebert.neurons.recording import RateMeter


def masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over real tokens: ``a``, ``b`` are ``[B, L, D]``, ``mask`` ``[B, L]``."""
    if mask is None:
        return F.mse_loss(a, b)
    m = mask.to(a.dtype).unsqueeze(-1)
    return ((a - b).square() * m).sum() / (m.sum() * a.shape[-1]).clamp(min=1.0)


def feature_losses(student_feats: list[torch.Tensor], teacher_hidden, layer_map: LayerMap, mask) -> list[torch.Tensor]:
    """The masked MSE of every matched (student block, teacher layer) pair, in ``layer_map`` order."""
    return [masked_mse(student_feats[s - 1], teacher_hidden[t].to(student_feats[0].dtype), mask)
            for s, t in layer_map.pairs]


def feature_loss(student_feats: list[torch.Tensor], teacher_hidden, layer_map: LayerMap, mask) -> torch.Tensor:
    return sum(feature_losses(student_feats, teacher_hidden, layer_map, mask))


def kd_loss(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, -1), F.softmax(teacher_logits.float() / t, -1),
                    reduction="batchmean") * t * t


def run_student(student: SpikeBertForSequenceClassification, input_ids, attention_mask,
                weights: LossWeights) -> tuple:
    """The student's output and the penalty terms the weights ask for (``spikes``, ``energy``), as
    differentiable tensors. The firing rate alone comes from the model's ``spike_rate`` output
    (``return_spike_rate``; a model that does not know the flag ignores it); with the energy
    penalty, one meter listening to the forward call gives both. With the attention weight the
    output carries the student's attention maps (``attentions``)."""
    maps = {"output_attentions": True} if weights.attn else {}
    if not weights.energy:
        extra = {"return_spike_rate": True} if weights.spikes else {}
        out = student(input_ids=input_ids, attention_mask=attention_mask, **extra, **maps)
        return out, ({"spikes": spike_rate(out)} if weights.spikes else {})
    from spikebert.analysis.energy import energy_ratio_estimate

    with student.listen(RateMeter()) as meter:
        out = student(input_ids=input_ids, attention_mask=attention_mask, **maps)
    mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
    penalties = {"spikes": meter.mean()} if weights.spikes else {}
    penalties["energy"] = energy_ratio_estimate(student, mask, meter).to(out.logits.dtype)
    return out, penalties


def labelled_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The cross-entropy over the rows that have a label (an augmented copy has -100), 0 for a
    batch with none. Equal bit for bit to ``F.cross_entropy(..., ignore_index=-100)`` where a label
    is present, without reading the labels back to the host (a synchronising read on a GPU)."""
    total = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
    return total / (labels >= 0).sum().clamp(min=1)


def spike_rate(out) -> torch.Tensor:
    """The student's differentiable mean firing rate, from its output's ``spike_rate`` (what the
    ``spikes`` weight penalises); a clear error for a model whose output does not carry one."""
    rate = getattr(out, "spike_rate", None)
    if rate is None:
        raise SpikeBertError("--w-spikes needs the student's mean firing rate, and this SpikeBERT model's "
                             "output has no spike_rate: leave --w-spikes at 0")
    return rate


class Distiller(nn.Module):
    """The student plus what distillation trains beside it (the embedding projection): one module
    so that one optimiser, one DDP wrapper and one checkpoint cover all of it. The teacher's
    outputs come in as arguments; the teacher itself is never part of it."""

    def __init__(self, student: SpikeBertForSequenceClassification, weights: LossWeights,
                 layer_map: LayerMap | None = None, teacher_embeddings: torch.Tensor | None = None):
        super().__init__()
        self.student = student
        self.weights = weights
        self.layer_map = layer_map
        self.emb_proj = None
        if teacher_embeddings is not None and weights.emb > 0:
            self.register_buffer("teacher_embeddings", teacher_embeddings.detach().clone(), persistent=False)
            if teacher_embeddings.shape[1] != student.config.hidden_size:
                self.emb_proj = nn.Linear(student.config.hidden_size, teacher_embeddings.shape[1], bias=False)
        else:
            self.teacher_embeddings = None

    def forward(self, input_ids, attention_mask, labels=None, teacher_logits=None, teacher_hidden=None,
                teacher_attentions=None):
        w = self.weights
        out, penalties = run_student(self.student, input_ids, attention_mask, w)
        terms: dict[str, torch.Tensor] = {}
        if w.ce and labels is not None:
            terms["ce"] = labelled_cross_entropy(out.logits, labels)
        if w.kl and teacher_logits is not None:
            terms["kl"] = kd_loss(out.logits, teacher_logits, w.temperature)
        if w.rep and teacher_hidden is not None:
            feats = self.student.distill_features(out.hidden_states)
            terms["rep"] = feature_loss(feats, teacher_hidden, self.layer_map, attention_mask)
        if w.emb and self.teacher_embeddings is not None:
            e = self.student.spikebert.embeddings.weight
            terms["emb"] = F.mse_loss(self.emb_proj(e) if self.emb_proj is not None else e, self.teacher_embeddings)
        if w.attn and teacher_attentions is not None:
            terms["attn"] = student_attention_loss(self.student, out, teacher_attentions, self.layer_map, attention_mask)
        terms |= penalties
        if not terms:
            raise SpikeBertError("no loss term applies to this batch (check the loss weights)")
        loss = sum(getattr(w, k) * v for k, v in terms.items())
        return loss, {k: v.detach() for k, v in terms.items()}


class FeatureAligner(nn.Module):
    """Stage 1: the student reproduces the teacher's hidden states (the feature MSE of every
    matched layer, weight 1, logged per student block), plus the attention term and the firing-rate
    and energy penalties when ``weights.attn``, ``weights.spikes`` or ``weights.energy`` is set."""

    def __init__(self, student: SpikeBertForSequenceClassification, layer_map: LayerMap,
                 weights: LossWeights = STAGE1):
        super().__init__()
        self.student, self.layer_map, self.weights = student, layer_map, weights

    def forward(self, input_ids, attention_mask, teacher_hidden, teacher_attentions=None):
        out, penalties = run_student(self.student, input_ids, attention_mask, self.weights)
        feats = self.student.distill_features(out.hidden_states)
        per_layer = feature_losses(feats, teacher_hidden, self.layer_map, attention_mask)
        terms = {f"mse_{s}": v for (s, _), v in zip(self.layer_map.pairs, per_layer)}
        if self.weights.attn and teacher_attentions is not None:
            penalties["attn"] = student_attention_loss(self.student, out, teacher_attentions, self.layer_map,
                                                       attention_mask)
        loss = sum(per_layer) + sum(getattr(self.weights, k) * v for k, v in penalties.items())
        return loss, {k: v.detach() for k, v in (terms | penalties).items()}


def student_attention_loss(student, out, teacher_attentions: dict, layer_map: LayerMap, mask) -> torch.Tensor:
    """The attention term of a student's output (:func:`spikebert.distill.attention.attention_loss`)."""
    from spikebert.distill.attention import attention_loss

    c = student.config
    return attention_loss(out.attentions, teacher_attentions, layer_map, mask, c.hidden_size // c.num_attention_heads)


def student_config(teacher_config, shape: StudentShape | None = None, **config) -> SpikeBertConfig:
    """A student shaped like the teacher (depth, width, heads, vocabulary) unless ``shape`` (or
    SpikeBertConfig fields in ``config``, such as the label fields) says otherwise."""
    base = dict(vocab_size=teacher_config.vocab_size, num_hidden_layers=teacher_config.num_hidden_layers,
                hidden_size=teacher_config.hidden_size, num_attention_heads=teacher_config.num_attention_heads,
                teacher_hidden_size=teacher_config.hidden_size,
                max_position_embeddings=getattr(teacher_config, "max_position_embeddings", 512),
                pad_token_id=pad_id(teacher_config))
    given = {**(shape.config_kwargs() if shape is not None else {}),
             **{k: v for k, v in config.items() if v is not None}}
    if "hidden_size" in given and "num_attention_heads" not in given and given["hidden_size"] % base["num_attention_heads"]:
        given["num_attention_heads"] = max(h for h in range(1, 17) if given["hidden_size"] % h == 0)
    try:
        return SpikeBertConfig(**{**base, **given})
    except ValueError as e:  # the config names its fields; the user gave flags
        message = str(e)
        for f in fields(StudentShape):  # the snake_case names (neuron, tau: also English words)
            if "_" in f.metadata["config"]:
                message = re.sub(rf"\b{f.metadata['config']}\b", "--" + f.name.replace("_", "-"), message)
        hint = " (give --neuron int)" if "--spike-levels applies" in message else ""
        raise SpikeBertError(f"student shape: {message}{hint}") from None


def teacher_word_embeddings(teacher) -> torch.Tensor:
    return teacher.get_input_embeddings().weight.detach()


def position_offset(teacher) -> int:
    """The row of the teacher's position table that its first token reads: 0 for BERT, ``pad + 1``
    for the families that number positions from after the padding index (RoBERTa, MPNet,
    XLM-R, ...; their rows 0..pad are never read by a real token). Detected by the embeddings
    module's ``padding_idx`` (or its position table's), which BERT does not have."""
    base = getattr(teacher, teacher.base_model_prefix, teacher)
    emb = getattr(base, "embeddings", None)
    pad = getattr(emb, "padding_idx", None)
    if pad is None:
        pad = getattr(getattr(emb, "position_embeddings", None), "padding_idx", None)
    return 0 if pad is None else int(pad) + 1


def teacher_position_embeddings(teacher) -> torch.Tensor | None:
    """A teacher's learned absolute position embeddings, the row of position 0 first (rows before
    :func:`position_offset` skipped), or None (rotary, relative only, none at all)."""
    base = getattr(teacher, teacher.base_model_prefix, teacher)
    pos = getattr(getattr(base, "embeddings", None), "position_embeddings", None)
    return pos.weight.detach()[position_offset(teacher):] if isinstance(pos, torch.nn.Embedding) else None


def embeddings_from_teacher(student: SpikeBertForSequenceClassification, teacher) -> bool:
    """Start a fresh student's word (and position) embeddings from the teacher's where the widths
    agree; returns whether it did. A student narrower than its teacher (384 from 768) keeps its
    random embeddings: the embedding term of stage 2 then pulls them towards the teacher's through
    a learned projection (:class:`Distiller`)."""
    return student.init_embeddings_from(teacher_word_embeddings(teacher), teacher_position_embeddings(teacher))
