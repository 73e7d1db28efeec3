"""SpikeBERT: the language Spikformer of Zhang et al. (arXiv 2308.15122), as a `transformers` model.

    tokens ─ Embedding (+ optional learned positions) ─ repeat over T time steps
           ─ Block × depth:   x = x + SpikingSelfAttention(x);  x = x + SpikingMLP(x)
           ─ LayerNorm ─ masked mean over tokens ─ classifier at each step ─ mean over T ─ logits

Spiking self-attention: Q, K, V = LIF(LayerNorm(Linear(x))); A = LIF_{θ/2}((Q Kᵀ) V · scale), no
softmax; out = LIF(LayerNorm(Linear(A))). Spiking MLP: LIF(LN(Linear_{d→4d})) → LIF(LN(Linear_{4d→d})).

Beyond the reference code: padding is masked (padded keys and values are zeroed, pooling averages
real tokens only), so a sentence's logits do not depend on its batch; positions are optional;
neuron state lives inside one forward call; firing rates are recorded on request.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from spikebert.neurons.lif import LIF, SpikeRecorder
from spikebert.neurons.surrogate import Heaviside, get_surrogate


# real: the embedding itself enters the residual stream (every block's q, k, v and fc1 multiply it);
# spike: the reference's Heaviside(embedding) with a surrogate gradient, the same spikes at each step
INPUT_ENCODINGS = ("real", "spike")


class SpikeBertConfig(PretrainedConfig):
    model_type = "spikebert"

    def __init__(self, vocab_size: int = 30522, num_hidden_layers: int = 6, hidden_size: int = 384,
                 num_attention_heads: int = 12, intermediate_size: int | None = None, time_steps: int = 4,
                 tau: float = 2.0, threshold: float = 1.0, surrogate: str = "atan",
                 surrogate_alpha: float | None = None, detach_reset: bool = True,
                 attention_scale: float = 0.125, max_position_embeddings: int = 512,
                 position_embeddings: bool = False, teacher_hidden_size: int | None = None,
                 layer_norm_eps: float = 1e-5, initializer_range: float = 0.02, pad_token_id: int = 0,
                 checkpoint_tokens: int = -1, input_encoding: str = "real", **kwargs):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}")
        if input_encoding not in INPUT_ENCODINGS:
            raise ValueError(f"input_encoding must be one of {', '.join(INPUT_ENCODINGS)} (got {input_encoding!r})")
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
        # training recomputes a block's activations in backward instead of keeping them once a batch
        # holds more than this many token slots (batch × length); 0: always, -1: never
        self.checkpoint_tokens = checkpoint_tokens
        self.input_encoding = input_encoding


def _lif(config: SpikeBertConfig, name: str, threshold: float | None = None) -> LIF:
    return LIF(tau=config.tau, threshold=config.threshold if threshold is None else threshold,
               surrogate=config.surrogate, surrogate_alpha=config.surrogate_alpha,
               detach_reset=config.detach_reset, name=name)


class LinearNormLIF(nn.Module):
    """``Linear → LayerNorm → LIF`` over ``[T, B, L, in]``: the unit every spiking layer is made of."""

    def __init__(self, config, d_in: int, d_out: int, name: str):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out, eps=config.layer_norm_eps)
        self.lif = _lif(config, name)

    def forward(self, x, mask=None):
        return self.lif(self.norm(self.linear(x)), mask)


class SpikingSelfAttention(nn.Module):
    def __init__(self, config: SpikeBertConfig, layer: int):
        super().__init__()
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.scale = config.attention_scale
        self.query = LinearNormLIF(config, d, d, f"layer{layer}.q")
        self.key = LinearNormLIF(config, d, d, f"layer{layer}.k")
        self.value = LinearNormLIF(config, d, d, f"layer{layer}.v")
        self.attn_lif = _lif(config, f"layer{layer}.attn", threshold=config.threshold / 2)
        self.output = LinearNormLIF(config, d, d, f"layer{layer}.out")

    def _split(self, x):  # [T, B, L, D] -> [T, B, H, L, Dh]
        T, B, L, D = x.shape
        return x.view(T, B, L, self.heads, D // self.heads).transpose(2, 3)

    def forward(self, x, mask=None):
        T, B, L, D = x.shape
        q = self._split(self.query(x, mask))
        k = self._split(self.key(x, mask))
        v = self._split(self.value(x, mask))
        if mask is not None:  # padded keys and values take no part in attention
            m = mask[None, :, None, :, None].to(k.dtype)
            k, v = k * m, v * m
        # (Q Kᵀ) V with no softmax. Spikes are 0/1 so every product is an exact integer in float32:
        # the cheaper association Q (Kᵀ V) gives bit-identical results when L exceeds the head width.
        if L > D // self.heads:
            a = q @ (k.transpose(-2, -1) @ v)
        else:
            a = (q @ k.transpose(-2, -1)) @ v
        a = a.transpose(2, 3).reshape(T, B, L, D) * self.scale
        return self.output(self.attn_lif(a, mask), mask)


class SpikingMLP(nn.Module):
    def __init__(self, config: SpikeBertConfig, layer: int):
        super().__init__()
        self.fc1 = LinearNormLIF(config, config.hidden_size, config.intermediate_size, f"layer{layer}.mlp1")
        self.fc2 = LinearNormLIF(config, config.intermediate_size, config.hidden_size, f"layer{layer}.mlp2")

    def forward(self, x, mask=None):
        return self.fc2(self.fc1(x, mask), mask)


class SpikeBertBlock(nn.Module):
    def __init__(self, config: SpikeBertConfig, layer: int):
        super().__init__()
        self.attention = SpikingSelfAttention(config, layer)
        self.mlp = SpikingMLP(config, layer)

    def forward(self, x, mask=None, recompute: bool = False):
        if recompute:  # keep only each sub-layer's input; recompute its activations in backward
            x = x + torch.utils.checkpoint.checkpoint(self.attention, x, mask, use_reentrant=False)
            return x + torch.utils.checkpoint.checkpoint(self.mlp, x, mask, use_reentrant=False)
        x = x + self.attention(x, mask)
        return x + self.mlp(x, mask)


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


class SpikeBertModel(SpikeBertPreTrainedModel):
    """The spiking encoder: token ids → per-step token features ``[T, B, L, D]`` and, per block,
    the block's output averaged over T (``[B, L, D]``, what distillation aligns)."""

    def __init__(self, config: SpikeBertConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=None)
        self.position_embeddings = (nn.Embedding(config.max_position_embeddings, config.hidden_size)
                                    if config.position_embeddings else None)
        self.layers = nn.ModuleList(SpikeBertBlock(config, i) for i in range(config.num_hidden_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def forward(self, input_ids, attention_mask=None):
        B, L = input_ids.shape
        if L > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {L} exceeds max_position_embeddings {self.config.max_position_embeddings}")
        x = self.embeddings(input_ids)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings(torch.arange(L, device=input_ids.device))[None]
        mask = attention_mask
        if self.config.input_encoding == "spike":
            sg = get_surrogate(self.config.surrogate)
            x = Heaviside.apply(x, sg, sg.alpha if self.config.surrogate_alpha is None else self.config.surrogate_alpha)
        x = x.unsqueeze(0).repeat(self.config.time_steps, 1, 1, 1)
        layer_means = []
        limit = self.config.checkpoint_tokens
        recompute = self.training and torch.is_grad_enabled() and (
            self.gradient_checkpointing or (limit is not None and limit >= 0 and B * L > limit))
        for block in self.layers:
            x = block(x, mask, recompute)
            layer_means.append(x.mean(0))
        return self.final_norm(x), layer_means


class SpikeBertForSequenceClassification(SpikeBertPreTrainedModel):
    """SpikeBERT with a classification head; ``forward`` returns ``.logits`` (and ``.loss`` with
    ``labels``) like any `transformers` classifier. ``hidden_states`` holds each block's output
    averaged over T; :meth:`distill_features` maps them to the teacher's width."""

    def __init__(self, config: SpikeBertConfig):
        super().__init__(config)
        self.spikebert = SpikeBertModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.distill_transforms = nn.ModuleList(
            nn.Sequential(nn.Linear(config.hidden_size, config.teacher_hidden_size),
                          nn.LayerNorm(config.teacher_hidden_size, eps=config.layer_norm_eps))
            for _ in range(config.num_hidden_layers))
        self.post_init()

    def forward(self, input_ids, attention_mask=None, labels=None, return_dict=None, **kwargs):
        feats, layer_means = self.spikebert(input_ids, attention_mask)
        if attention_mask is None:
            pooled = feats.mean(2)
        else:
            m = attention_mask.to(feats.dtype)[None, :, :, None]
            pooled = (feats * m).sum(2) / m.sum(2).clamp(min=1.0)
        logits = self.classifier(pooled).mean(0)  # classify at each step, average over T
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=tuple(layer_means))

    def distill_features(self, hidden_states) -> list[torch.Tensor]:
        """Each block's T-averaged output mapped to the teacher's width (``Linear → LayerNorm``)."""
        return [t(h) for t, h in zip(self.distill_transforms, hidden_states)]

    @contextmanager
    def record_spikes(self):
        """``with model.record_spikes() as rec: model(...)``; then ``rec.rates()`` gives the firing
        rate of every neuron group (``layer{i}.{q,k,v,attn,out,mlp1,mlp2}``) over real tokens."""
        rec = SpikeRecorder()
        lifs = [m for m in self.modules() if isinstance(m, LIF)]
        for m in lifs:
            m.recorder = rec
        try:
            yield rec
        finally:
            for m in lifs:
                m.recorder = None

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
