"""SpikeBERT: the language Spikformer of Zhang et al. (arXiv 2308.15122), as a `transformers` model.

    tokens ─ Embedding (+ optional learned positions) ─ input encoding over T steps
           ─ Block × depth:   x = x + SpikingSelfAttention(x);  x = x + SpikingMLP(x)
           ─ LayerNorm ─ masked mean over tokens ─ classifier at each step ─ mean over T ─ logits

Input encoding (``config.input_encoding``, :mod:`spikebert.neurons.encoding`): ``real`` repeats the
embedding itself, so the residual stream carries a real-valued part; ``spike`` (the reference's
``self.atan(x)``) repeats its Heaviside step H(embedding) with a surrogate gradient, so the residual
stream is an integer count: the input spikes plus the spike outputs of the sub-layers before;
``neuron`` drives the model's neuron with LayerNorm(embedding) for T steps (spikes that vary over
time, the residual stream an integer count as with ``spike``).

Spiking self-attention: Q, K, V = N(LayerNorm(Linear(x))); A = N_{θ/2}((Q Kᵀ) V · scale), no
softmax; out = N(LayerNorm(Linear(A))). Spiking MLP: N(LN(Linear_{d→4d})) → N(LN(Linear_{4d→d})).
N is the neuron named by ``config.neuron`` (the fused multi-step LIF by default; the registry is
in :mod:`spikebert.neurons.base`; ``int`` and ``bispike`` spike beyond one bit,
:mod:`spikebert.neurons.multilevel`).

The model declares its neuron groups, in order: ``model.neuron_groups()`` gives ``embed`` (with
spike or neuron input) and ``layer{i}.{q,k,v,attn,out,mlp1,mlp2}``. The spike recorder
(``model.record_spikes()``), the differentiable firing rate (``return_spike_rate=True``), the
rasters and the energy count all listen to those groups.

Beyond the reference code: padding is masked (padded keys and values are zeroed, pooling averages
real tokens only), so a sentence's logits do not depend on its batch; positions are optional;
neuron state lives inside one forward call; firing rates are recorded on request.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput

from spikebert.neurons.base import DETACH_RESET, SURROGATE, THRESHOLD, Neuron, SpikeSource, get_neuron, has_levels
from spikebert.neurons.encoding import ENCODINGS, get_encoding
from spikebert.neurons.lif import TAU
from spikebert.neurons.multilevel import SPIKE_LEVELS
from spikebert.neurons.recording import RateMeter, SpikeRecorder

# real: the embedding itself enters the residual stream (every block's q, k, v and fc1 multiply it);
# spike: the reference's Heaviside(embedding) with a surrogate gradient, the same spikes at each step;
# neuron: LayerNorm(embedding) as the current of a neuron group over T (spikes that vary over time)
INPUT_ENCODINGS = tuple(ENCODINGS)


def resolve_spike_levels(neuron: str, spike_levels: int | None) -> int | None:
    """``spike_levels`` checked against ``neuron`` (an unknown name is an error): the levels of a
    neuron that has them (:data:`~spikebert.neurons.multilevel.SPIKE_LEVELS` when not given), None
    for one that has none."""
    if not has_levels(neuron):
        if spike_levels is not None:
            raise ValueError(f"spike_levels applies to a neuron with levels (int), not {neuron!r} "
                             f"(got {spike_levels})")
        return None
    if spike_levels is None:
        return SPIKE_LEVELS
    if isinstance(spike_levels, bool) or int(spike_levels) != spike_levels or spike_levels < 1:
        raise ValueError(f"spike_levels must be a whole number >= 1 (got {spike_levels})")
    return int(spike_levels)


class SpikeBertConfig(PretrainedConfig):
    r"""The configuration of a SpikeBERT model (:class:`SpikeBertModel`,
    :class:`SpikeBertForSequenceClassification`). Fields that own no tensor (``time_steps``,
    ``neuron`` but ``bispike``, ``spike_levels``, ``tau``, ``threshold``, the surrogate,
    ``input_encoding``) may differ between models that share weights.

    Args:
        vocab_size (`int`, *optional*, defaults to 30522):
            Number of token ids the word embedding holds (the teacher's vocabulary).
        num_hidden_layers (`int`, *optional*, defaults to 6):
            Number of spiking Transformer blocks.
        hidden_size (`int`, *optional*, defaults to 384):
            Width of the embedding and of every block's residual stream.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Heads of the spiking self-attention; must divide `hidden_size`.
        intermediate_size (`int`, *optional*):
            Width of the spiking MLP's hidden layer; defaults to 4 × `hidden_size`.
        time_steps (`int`, *optional*, defaults to 4):
            Number of time steps T the network runs for every input (>= 1).
        tau (`float`, *optional*, defaults to 2.0):
            Membrane time constant of the LIF neuron (> 1; read by neurons that leak).
        threshold (`float`, *optional*, defaults to 1.0):
            Firing threshold θ of every neuron; the attention neurons fire at θ/2.
        surrogate (`str`, *optional*, defaults to `"atan"`):
            Surrogate gradient of the spike function: `"atan"`, `"sigmoid"` or `"rectangle"`
            (:mod:`spikebert.neurons.surrogate`); also used by the `spike` input encoding.
        surrogate_alpha (`float`, *optional*):
            Sharpness α of the surrogate; defaults to the surrogate's own (2 for ATan).
        detach_reset (`bool`, *optional*, defaults to `True`):
            Drop the gradient through the membrane reset, as the reference does.
        attention_scale (`float`, *optional*, defaults to 0.125):
            Factor applied to (Q Kᵀ) V before the attention neuron (there is no softmax).
        max_position_embeddings (`int`, *optional*, defaults to 512):
            Longest input accepted (and rows of the position table when `position_embeddings`).
        position_embeddings (`bool`, *optional*, defaults to `False`):
            Add learned absolute position embeddings to the word embedding (the reference has none).
        teacher_hidden_size (`int`, *optional*):
            Width of the teacher's hidden states that the distillation features are mapped to;
            defaults to `hidden_size`.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of every LayerNorm.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of Linear and Embedding weights.
        pad_token_id (`int`, *optional*, defaults to 0):
            Id of the padding token.
        checkpoint_tokens (`int`, *optional*, defaults to -1):
            In training, a batch of more than this many token slots (batch × length) recomputes
            each block's activations in backward instead of keeping them; 0: always, -1: never.
        input_encoding (`str`, *optional*, defaults to `"real"`):
            How the embedding enters the blocks: `"real"` (the embedding itself), `"spike"`
            (its Heaviside step, a neuron group `embed`) or `"neuron"` (LayerNorm of it driving a
            neuron group `embed` of the model's neuron over T); see :mod:`spikebert.neurons.encoding`.
        neuron (`str`, *optional*, defaults to `"lif"`):
            The spiking neuron of every layer, by registry name (`"lif"`, `"if"`, `"int"`: integer
            counts 0..`spike_levels` a step, `"bispike"`: spikes -1, 0, +1 times a learned amplitude
            per neuron group; :func:`spikebert.neurons.base.get_neuron`,
            :mod:`spikebert.neurons.multilevel`).
        spike_levels (`int`, *optional*):
            The most spikes a neuron with levels (`"int"`) emits in one step, D >= 1; defaults to 4
            for such a neuron (and is then saved), and must be left unset for the others.
        return_spike_rate (`bool`, *optional*, defaults to `False`):
            Whether `forward` returns `spike_rate` (the differentiable mean firing rate) unless
            told otherwise by its own `return_spike_rate` argument.
        kwargs:
            Passed to :class:`~transformers.PretrainedConfig` (`num_labels`, `id2label`, ...).
    """

    model_type = "spikebert"

    def __init__(self, vocab_size: int = 30522, num_hidden_layers: int = 6, hidden_size: int = 384,
                 num_attention_heads: int = 12, intermediate_size: int | None = None, time_steps: int = 4,
                 tau: float = TAU, threshold: float = THRESHOLD, surrogate: str = SURROGATE,
                 surrogate_alpha: float | None = None, detach_reset: bool = DETACH_RESET,
                 attention_scale: float = 0.125, max_position_embeddings: int = 512,
                 position_embeddings: bool = False, teacher_hidden_size: int | None = None,
                 layer_norm_eps: float = 1e-5, initializer_range: float = 0.02, pad_token_id: int = 0,
                 checkpoint_tokens: int = -1, input_encoding: str = "real", neuron: str = "lif",
                 spike_levels: int | None = None, return_spike_rate: bool = False, **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_attention_heads "
                             f"{num_attention_heads}")
        get_encoding(input_encoding)  # a clear error for an unknown name
        spike_levels = resolve_spike_levels(neuron, spike_levels)
        if time_steps < 1:
            raise ValueError(f"time_steps must be >= 1 (got {time_steps})")
        self.vocab_size = vocab_size
        self.num_hidden_layers = num_hidden_layers
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size or 4 * hidden_size
        self.time_steps = time_steps
        self.tau = tau
        self.threshold = threshold
        self.surrogate = surrogate
        self.surrogate_alpha = surrogate_alpha
        self.detach_reset = detach_reset
        self.attention_scale = attention_scale
        self.max_position_embeddings = max_position_embeddings
        self.position_embeddings = position_embeddings
        self.teacher_hidden_size = teacher_hidden_size or hidden_size
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.checkpoint_tokens = checkpoint_tokens
        self.input_encoding = input_encoding
        self.neuron = neuron
        self.spike_levels = spike_levels
        self.return_spike_rate = return_spike_rate


@dataclass
class SpikeBertModelOutput(ModelOutput):
    """The output of :class:`SpikeBertModel`.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(time_steps, batch_size, sequence_length, hidden_size)`):
            The last block's output at every time step, after the final LayerNorm.
        layer_means (`tuple(torch.FloatTensor)`, one per block, each `(batch_size, sequence_length, hidden_size)`):
            Each block's output averaged over the time steps (what distillation aligns).
        spike_rate (`torch.FloatTensor` of shape `()`, *optional*, with `return_spike_rate=True`):
            The mean over neuron groups of each group's firing rate over real tokens,
            differentiable through the surrogate gradient (for a firing-rate penalty).
        attentions (`tuple(torch.FloatTensor)`, *optional*, with `output_attentions=True`, one per block,
            each `(batch_size, num_heads, sequence_length, sequence_length)`):
            Each block's spike scores Q·Kᵀ per head, averaged over the time steps (no softmax:
            counts of coincident spikes; padded keys score 0), for attention distillation.

    Besides the attributes, it unpacks like the tuple it replaces: ``feats, layer_means = out``
    (iteration gives the values that are set, as ``to_tuple()`` does, not the keys).
    """

    last_hidden_state: torch.FloatTensor | None = None
    layer_means: tuple[torch.FloatTensor, ...] | None = None
    spike_rate: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None

    def __iter__(self):
        return iter(self.to_tuple())


@dataclass
class SpikeBertSequenceClassifierOutput(SequenceClassifierOutput):
    """:class:`~transformers.modeling_outputs.SequenceClassifierOutput` (``loss``, ``logits``,
    ``hidden_states``: each block's output averaged over T) plus ``spike_rate`` (see
    :class:`SpikeBertModelOutput`), set when the forward was asked for it."""

    spike_rate: torch.FloatTensor | None = None


def make_neuron(config: SpikeBertConfig, name: str, threshold: float | None = None):
    """The neuron of ``config.neuron`` for the group ``name`` (at ``threshold``, default the config's)."""
    return get_neuron(config.neuron).from_config(config, name, threshold)


def _merge(*parts) -> dict[str, SpikeSource]:
    groups: dict[str, SpikeSource] = {}
    for part in parts:
        groups.update(part.neuron_groups())
    return groups


class SpikingLinear(nn.Module):
    """``Linear → LayerNorm → neuron`` over ``[T, B, L, in]``: the unit every spiking layer is made of."""

    def __init__(self, config, d_in: int, d_out: int, name: str):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out, eps=config.layer_norm_eps)
        self.neuron = make_neuron(config, name)

    def forward(self, x, mask=None, scaled: bool = True):
        return self.neuron(self.norm(self.linear(x)), mask, scaled)

    def neuron_groups(self) -> dict[str, SpikeSource]:
        return self.neuron.neuron_groups()


class SpikingSelfAttention(nn.Module):
    def __init__(self, config: SpikeBertConfig, layer: int):
        super().__init__()
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.scale = config.attention_scale
        self.query = SpikingLinear(config, d, d, f"layer{layer}.q")
        self.key = SpikingLinear(config, d, d, f"layer{layer}.k")
        self.value = SpikingLinear(config, d, d, f"layer{layer}.v")
        self.attn_neuron = make_neuron(config, f"layer{layer}.attn", threshold=config.threshold / 2)
        self.output = SpikingLinear(config, d, d, f"layer{layer}.out")

    def neuron_groups(self) -> dict[str, SpikeSource]:
        return _merge(self.query, self.key, self.value, self.attn_neuron, self.output)

    def _scale(self):
        """The attention scale times the amplitudes of the q, k and v neurons that have one."""
        scale = self.scale
        for unit in (self.query, self.key, self.value):
            gain = unit.neuron.gain()
            scale = scale if gain is None else scale * gain
        return scale

    def _split(self, x):  # [T, B, L, D] -> [T, B, H, L, Dh]
        T, B, L, D = x.shape
        return x.view(T, B, L, self.heads, D // self.heads).transpose(2, 3)

    def forward(self, x, mask=None, output_attentions: bool = False):
        """``[T, B, L, D]`` -> the same; with ``output_attentions``, also the head's spike scores
        Q·Kᵀ averaged over T, ``[B, H, L, L]`` (padded keys score 0), computed only then."""
        T, B, L, D = x.shape
        # the spikes unscaled: a neuron's amplitude (bispike) is folded into the scale below
        q = self._split(self.query(x, mask, scaled=False))
        k = self._split(self.key(x, mask, scaled=False))
        v = self._split(self.value(x, mask, scaled=False))
        if mask is not None:  # padded keys and values take no part in attention
            m = mask[None, :, None, :, None].to(k.dtype)
            k, v = k * m, v * m
        # (Q Kᵀ) V with no softmax. Spikes are whole numbers (0/1, counts 0..D, or -1/0/+1), so every
        # product and sum is an exact integer in float32 (while L · head width · D³ < 2^24: D <= 7 at
        # L = 512 and 64-wide heads): the cheaper association Q (Kᵀ V) gives bit-identical results
        # when L exceeds the head width. The amplitudes are applied after, as one factor, so a
        # sentence's output never depends on its batch's length.
        scores = q @ k.transpose(-2, -1) if output_attentions or L <= D // self.heads else None
        a = q @ (k.transpose(-2, -1) @ v) if L > D // self.heads else scores @ v
        a = a.transpose(2, 3).reshape(T, B, L, D) * self._scale()
        out = self.output(self.attn_neuron(a, mask), mask)
        return (out, scores.mean(0)) if output_attentions else out


class SpikingMLP(nn.Module):
    def __init__(self, config: SpikeBertConfig, layer: int):
        super().__init__()
        self.fc1 = SpikingLinear(config, config.hidden_size, config.intermediate_size, f"layer{layer}.mlp1")
        self.fc2 = SpikingLinear(config, config.intermediate_size, config.hidden_size, f"layer{layer}.mlp2")

    def neuron_groups(self) -> dict[str, SpikeSource]:
        return _merge(self.fc1, self.fc2)

    def forward(self, x, mask=None):
        return self.fc2(self.fc1(x, mask), mask)


class SpikeBertBlock(nn.Module):
    def __init__(self, config: SpikeBertConfig, layer: int):
        super().__init__()
        self.attention = SpikingSelfAttention(config, layer)
        self.mlp = SpikingMLP(config, layer)

    def neuron_groups(self) -> dict[str, SpikeSource]:
        return _merge(self.attention, self.mlp)

    def forward(self, x, mask=None, recompute: bool = False, output_attentions: bool = False):
        """The block's output; with ``output_attentions``, ``(output, attention scores)``."""
        if recompute:  # keep only each sub-layer's input; recompute its activations in backward
            a = torch.utils.checkpoint.checkpoint(self.attention, x, mask, output_attentions, use_reentrant=False)
        else:
            a = self.attention(x, mask, output_attentions)
        a, scores = a if output_attentions else (a, None)
        x = x + a
        if recompute:
            x = x + torch.utils.checkpoint.checkpoint(self.mlp, x, mask, use_reentrant=False)
        else:
            x = x + self.mlp(x, mask)
        return (x, scores) if output_attentions else x


class SpikeBertPreTrainedModel(PreTrainedModel):
    config_class = SpikeBertConfig
    base_model_prefix = "spikebert"
    supports_gradient_checkpointing = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, std)
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()
        elif isinstance(module, Neuron) and module.gain() is not None:
            module.gain().data.fill_(1.0)  # the bispike amplitude starts at 1

    def neuron_groups(self) -> dict[str, SpikeSource]:
        """The model's neuron groups by name, in order (``embed`` first with spike input, then
        ``layer{i}.{q,k,v,attn,out,mlp1,mlp2}``); ``list(model.neuron_groups())`` gives the names."""
        raise NotImplementedError

    @contextmanager
    def listen(self, listener):
        """Within the block, ``listener(name, spikes, mask)`` is called whenever a neuron group of the
        model fires (``spikes`` ``[T, B, L, D]``, ``mask`` ``[B, L]`` or None); yields ``listener``."""
        groups = list(self.neuron_groups().values())
        for g in groups:
            g.listeners.append(listener)
        try:
            yield listener
        finally:
            for g in groups:
                g.listeners.remove(listener)

    def record_spikes(self):
        """``with model.record_spikes() as rec: model(...)``; then ``rec.rates()`` gives the firing
        rate of every declared neuron group over real tokens."""
        return self.listen(SpikeRecorder())


class SpikeBertModel(SpikeBertPreTrainedModel):
    """The spiking encoder: token ids → :class:`SpikeBertModelOutput` (per-step token features
    ``[T, B, L, D]`` and, per block, the block's output averaged over T, ``[B, L, D]``)."""

    def __init__(self, config: SpikeBertConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=None)
        self.position_embeddings = (nn.Embedding(config.max_position_embeddings, config.hidden_size)
                                    if config.position_embeddings else None)
        self.input_encoder = get_encoding(config.input_encoding).from_config(config)
        self.layers = nn.ModuleList(SpikeBertBlock(config, i) for i in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def neuron_groups(self) -> dict[str, SpikeSource]:
        return _merge(self.input_encoder, *self.layers)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The real-valued token embedding ``[B, L, D]`` (word, plus position when configured)."""
        L = input_ids.shape[1]
        if L > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {L} exceeds max_position_embeddings "
                             f"{self.config.max_position_embeddings}")
        x = self.embeddings(input_ids)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings(torch.arange(L, device=input_ids.device))[None]
        return x

    def _recompute(self, tokens: int) -> bool:
        limit = self.config.checkpoint_tokens
        return self.training and torch.is_grad_enabled() and (
            self.gradient_checkpointing or (limit is not None and limit >= 0 and tokens > limit))

    def forward(self, input_ids, attention_mask=None, return_spike_rate: bool | None = None,
                return_dict=None, output_attentions: bool = False) -> SpikeBertModelOutput:
        """``input_ids`` ``[B, L]``, ``attention_mask`` ``[B, L]`` (1 for real tokens); with
        ``return_spike_rate`` (default ``config.return_spike_rate``) the output carries ``spike_rate``,
        with ``output_attentions`` each block's attention scores (``attentions``)."""
        if return_spike_rate is None:
            return_spike_rate = self.config.return_spike_rate
        meter = RateMeter() if return_spike_rate else None
        recompute = self._recompute(input_ids.numel())
        with self.listen(meter) if meter is not None else nullcontext():
            x = self.input_encoder(self.embed(input_ids), attention_mask, self.config.time_steps)
            layer_means, attentions = [], []
            for block in self.layers:
                x = block(x, attention_mask, recompute, output_attentions)
                if output_attentions:
                    x, scores = x
                    attentions.append(scores)
                layer_means.append(x.mean(0))
        return SpikeBertModelOutput(last_hidden_state=self.final_norm(x), layer_means=tuple(layer_means),
                                    spike_rate=meter.mean() if meter is not None else None,
                                    attentions=tuple(attentions) if output_attentions else None)


class SpikeBertForSequenceClassification(SpikeBertPreTrainedModel):
    """SpikeBERT with a classification head; ``forward`` returns ``.logits`` (and ``.loss`` with
    ``labels``) like any `transformers` classifier, as a :class:`SpikeBertSequenceClassifierOutput`.
    ``hidden_states`` holds each block's output averaged over T; :meth:`distill_features` maps them
    to the teacher's width; ``spike_rate`` is set with ``return_spike_rate=True``."""

    def __init__(self, config: SpikeBertConfig):
        super().__init__(config)
        self.spikebert = SpikeBertModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.distill_transforms = self._distill_transforms()
        self.post_init()

    def _distill_transforms(self) -> nn.ModuleList:
        c = self.config
        return nn.ModuleList(nn.Sequential(nn.Linear(c.hidden_size, c.teacher_hidden_size),
                                           nn.LayerNorm(c.teacher_hidden_size, eps=c.layer_norm_eps))
                             for _ in range(c.num_hidden_layers))

    def reset_distill_transforms(self, teacher_hidden_size: int) -> None:
        """New, freshly initialised feature projections onto a teacher of another width (stage 2
        from a teacher other than stage 1's)."""
        self.config.teacher_hidden_size = teacher_hidden_size
        device = self.classifier.weight.device
        self.distill_transforms = self._distill_transforms().to(device)
        self.distill_transforms.apply(self._init_weights)

    def neuron_groups(self) -> dict[str, SpikeSource]:
        return self.spikebert.neuron_groups()

    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None,
                return_spike_rate: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> SpikeBertSequenceClassifierOutput:
        out = self.spikebert(input_ids, attention_mask, return_spike_rate=return_spike_rate,
                             output_attentions=bool(output_attentions))
        feats = out.last_hidden_state
        if attention_mask is None:
            pooled = feats.mean(2)
        else:
            m = attention_mask.to(feats.dtype)[None, :, :, None]
            pooled = (feats * m).sum(2) / m.sum(2).clamp(min=1.0)
        logits = self.classifier(pooled).mean(0)  # classify at each step, average over T
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SpikeBertSequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.layer_means,
                                                 attentions=out.attentions, spike_rate=out.spike_rate)

    def distill_features(self, hidden_states) -> list[torch.Tensor]:
        """Each block's T-averaged output mapped to the teacher's width (``Linear → LayerNorm``)."""
        return [t(h) for t, h in zip(self.distill_transforms, hidden_states)]

    def init_embeddings_from(self, weight: torch.Tensor, positions: torch.Tensor | None = None) -> bool:
        """Copy a teacher's word-embedding matrix when the shapes agree (returns whether it did), and
        its position embeddings (as many rows as the student has) when the student has them."""
        emb = self.spikebert.embeddings.weight
        if tuple(weight.shape) != tuple(emb.shape):
            return False
        with torch.no_grad():
            emb.copy_(weight)
            pos = self.spikebert.position_embeddings
            if pos is not None and positions is not None and positions.shape[-1] == emb.shape[-1]:
                n = min(len(positions), len(pos.weight))
                pos.weight[:n].copy_(positions[:n])
        return True


def register_auto_classes():
    """Make ``AutoConfig`` / ``AutoModelForSequenceClassification`` know SpikeBERT."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    try:
        AutoConfig.register("spikebert", SpikeBertConfig)
        AutoModel.register(SpikeBertConfig, SpikeBertModel)
        AutoModelForSequenceClassification.register(SpikeBertConfig, SpikeBertForSequenceClassification)
    except ValueError:  # already registered
        pass
