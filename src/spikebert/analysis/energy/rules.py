"""The counting rules of the energy estimate: a SpikeBERT model against a BERT, from counted operations.

Operations are counted per sentence at its real (unpadded) token count L, then averaged over the
sentences. Energy = MACs × E_MAC + ACs × E_AC with E_MAC = 4.6 pJ and E_AC = 0.9 pJ (32-bit float
multiply-accumulate and add at 45 nm, Horowitz 2014), as in the SpikeBERT and Spikformer papers.

ANN (BERT of ``layers``, width d, intermediate f), per layer, all MACs:
    Q, K, V projections 3·L·d², attention scores Q·Kᵀ L²·d, weighted sum A·V L²·d,
    attention output L·d², feed-forward 2·L·d·f.
Plus the head: pooler d² and classifier d·C. Embedding lookups, LayerNorm, softmax, GELU, biases
and residual additions are not counted (nor are they for the SNN). Any encoder family is counted
so (:meth:`AnnShape.of` reads its config); MPNet's relative attention bias, which BERT does not
have, is what it is: a table lookup (no operation) and one addition per attention score, head and
layer, L²·H additions a layer, counted as ACs (an addition is not a MAC). DeBERTa's disentangled
attention (extra position matmuls) is not modelled. For BERT-base (12 layers,
d = 768, f = 3072) at L = 128 the encoder is 11.17 G MACs and the head 0.59 M: 11.2 G, 51.4 mJ,
the paper's BERT figure.

SNN (SpikeBERT: T time steps, width d, MLP width f, C classes). Spikes are measured per sentence
by listening to the neuron groups the model declares (``model.neuron_groups()``); Σg is group g's
sum of spike levels |s| over all T steps, real tokens and channels. An operation with a spike
operand accumulates instead of multiplying: every spike (a 1 at some step, token and channel) adds
one weight or value to each of its fan-out outputs, so ACs = Σ(operand) × fan-out.

**Spikes beyond one bit** (:mod:`spikebert.neurons.multilevel`) are counted by their level: an
``int`` spike of k (0..D) is k binary spikes (the virtual steps it stands for), k accumulates per
fan-out output; a ``bispike`` spike of -1 costs what +1 does (adding or subtracting is one
accumulate: a sign costs nothing extra), and its learned amplitude α is a scale folded into the
next layer's weights (αW, or into the attention scale), so it costs nothing either. Neurons hand
their listeners exactly these levels |s|, so every formula below holds as written, for every
neuron, and so do the firing rates (a rate is the mean level per neuron and step). Where a residual
stream sums spikes of groups with different amplitudes, a chip keeps one folded weight copy per
amplitude (memory, not operations). Per block i:

    Q·Kᵀ        spike operand Q, fan-out L (one score per real key)       ACs  ΣQ·L
    (QKᵀ)·V     spike operand V, fan-out L (one output per real query)    ACs  ΣV·L
    out Linear  input: attention spikes, fan-out d                        ACs  Σattn·d
    MLP fc2     input: mlp1 spikes, fan-out d                             ACs  Σmlp1·d
(K is also binary but is the second operand of Q·Kᵀ: each of its products is counted once, via Q.
The model's forward may compute Q·(KᵀV) when L exceeds the head width; the count follows the
defined association (QKᵀ)V.) Those four are counted alike under every convention below.

The residual-fed layers: q, k and v read the block's input x_i (fan-out 3d together) and MLP fc1
reads x_i + out_i (fan-out f). x_0 is the encoded input and x_{i+1} = x_i + out_i + mlp2_i, so
x_i = x_0 + S_i with S_i = Σ_{j<i} (out_j + mlp2_j), a count of spikes.

**Strict rule** (per operand; the headline, ``snn``, ``snn_energy_mj``, ``energy_ratio``):
- ``real`` input: x_0 is the token embedding, real-valued and the same at every step. By linearity
  W·x_i = W·x_0 + W·S_i: a spike-driven implementation multiplies the embedding once per token
  (MACs, L·d·(3d + f) per block, not T times: it does not change over time) and accumulates the
  spikes (ACs, ΣS_i·(3d + f) + Σout_i·f).
- ``spike`` and ``neuron`` input: x_0 = E, the input spikes (the group ``embed``, 0/1 at every
  step; the same at every step with ``spike``, varying with ``neuron``), so x_i is an integer count
  and every residual-fed layer accumulates: ACs (ΣE + ΣS_i)·(3d + f) + Σout_i·f, no MAC. The
  embedding lookup behind E is a table read: no operation (E is a function of the token, and of
  its position when the model learns positions, ``neuron``'s LayerNorm and membrane included, so
  its spike train can be the table's entry).
The encoding is read from the declared groups: a model with an ``embed`` group has spike input.

**Paper's convention** (Spikformer, SpikeBERT; ``conventions["paper"]``): E = E_MAC·FLOPs(first
layer) + E_AC·Σ fr·T·FLOPs over every other synaptic operation, fr the measured firing rate of
its input. The first layer is the one reading the encoded input, block 0's q, k, v: MACs L·3d²,
once per token (the input is the same at every step), whatever the encoding (``neuron``'s input
varies over the steps; it is counted the same, so for it this convention holds only where those
products are tabled per token, not made at each step). For any other
operation fr·T·FLOPs = Σ(input spikes)·fan-out, so it is the strict count above with the residual
stream's spikes (E + S_i, and out_i for fc1): block 0's fc1 and the later blocks' q, k, v, fc1
read their input's spikes. A real-valued embedding has no firing rate: under this convention its
share of the later residual-fed layers is not counted at all.

**Dense residual** (``snn_dense_residual``, ``conventions["dense_residual"]``): the residual-fed
layers as dense multiplies at every step (T·L·d·(3d + f) MACs per block), the rest as above: what
a GPU or CPU does.

The head (a classifier at each step on the LayerNorm output, real-valued) is T·d·C MACs under
every convention.

**The headline is the strict rule**: it follows each operand to the operation a spike-driven
chip would run (multiply a real value, accumulate a spike), so it holds for either encoding. The
paper's convention is a fixed rule: it charges the first layer MACs even when its input is spikes
and drops a real embedding's share in every later block, so it favours real input. Both are in
the report, with the ratio against a BERT-base of the paper's shape (12 × 768, intermediate 3072)
on the same texts, beside the paper's figures (SNN 14.30 mJ, BERT-base 51.41 mJ, 27.8 %).

**Estimate for training** (:func:`energy_ratio_estimate`): the strict rule on one batch, computed
from the spike counts of the forward call as tensors, so that it back-propagates through the
surrogate gradients: each group's spikes weighted by the operations they drive (an input spike by
the q, k, v and fc1 of every block, a block's out and mlp2 spikes by those of every later block).
It is what the energy penalty of distillation (``--w-energy``) lowers; on the same texts it equals
the ``energy_ratio`` of :func:`measure` without a teacher.

Without a given teacher the ANN reference is a BERT of the teacher's shape: as many layers as the
student, width ``teacher_hidden_size``, intermediate 4 × width (BERT's ratio), 64-wide heads.
Firing rates come from :class:`~spikebert.neurons.recording.SpikeRecorder`. Wall-clock CPU time is
measured too: a CPU runs spikes as dense float matmuls, so it shows none of the saving the energy
model assumes for neuromorphic hardware.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikebert.errors import SpikeBertError
from spikebert.neurons.encoding import INPUT_GROUP

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
CONVENTIONS = ("strict", "paper", "dense_residual")
HEADLINE = "strict"
HEADLINE_WHY = ("the strict rule follows each operand to the operation a spike-driven chip runs (a real "
                "operand multiplies, a spike accumulates), for either input encoding; the paper's convention "
                "charges the first layer MACs whatever its input and drops a real embedding's share in every "
                "later block, so it favours real input")
PAPER_FIGURES = {"snn_energy_mj": 14.30, "ann_energy_mj": 51.41, "energy_ratio": 14.30 / 51.41,
                 "source": "SpikeBERT (arXiv 2308.15122): a 12 × 768 SpikeBERT against BERT-base, paper's convention"}
# the spiking groups of a block whose spikes the count reads (k: the second operand of Q·Kᵀ)
ROLES = ("q", "v", "attn", "out", "mlp1", "mlp2")


@dataclass
class Ops:
    macs: float = 0.0
    acs: float = 0.0

    def __add__(self, other: "Ops") -> "Ops":
        return Ops(self.macs + other.macs, self.acs + other.acs)

    def __truediv__(self, n: float) -> "Ops":
        return Ops(self.macs / n, self.acs / n)

    def energy_mj(self, e_mac: float = E_MAC_PJ, e_ac: float = E_AC_PJ) -> float:
        return (self.macs * e_mac + self.acs * e_ac) * 1e-9  # pJ -> mJ


@dataclass(frozen=True)
class AnnShape:
    """What the ANN count needs of a Transformer encoder of any family (BERT, RoBERTa, MPNet,
    DistilBERT, ELECTRA, ...): depth, width, feed-forward width, heads, classes.

    ``relative_bias_heads``: heads whose attention scores get a learned relative-position bias
    added in every layer (MPNet: all of them; BERT and RoBERTa: none). That bias is one lookup of
    a small table per (query, key, head), made once per sentence and shared by the layers (a table
    read: no operation), and one addition to each score in every layer: L²·H additions a layer,
    counted as accumulates (ACs, E_AC each), not as MACs, since nothing is multiplied."""

    layers: int
    hidden: int
    intermediate: int
    num_labels: int = 2
    pooler: bool = True
    heads: int = 0  # 0: not known (a BERT of 64-wide heads when a model is built from the shape)
    relative_bias_heads: int = 0

    @classmethod
    def of(cls, config) -> "AnnShape":
        """The shape of any encoder's config, read from the names the families use (``hidden_size``
        / ``dim`` / ``d_model``, ``num_hidden_layers`` / ``n_layers`` / ``num_layers``,
        ``intermediate_size`` / ``hidden_dim`` / ``d_ff``, ``num_attention_heads`` / ``n_heads``);
        a relative attention bias (``relative_attention_num_buckets``, MPNet's) is counted on
        every head. The head is a d × d layer (BERT's pooler, RoBERTa's and MPNet's dense) and the
        d × C classifier."""

        def get(*names, default=None):
            for n in names:
                if getattr(config, n, None) is not None:
                    return int(getattr(config, n))
            if default is not None:
                return default
            raise SpikeBertError(f"a {config.model_type} config has none of {', '.join(names)}: cannot count it")

        hidden = get("hidden_size", "dim", "d_model")
        inter = get("intermediate_size", "hidden_dim", "d_ff", default=4 * hidden)
        heads = get("num_attention_heads", "n_heads", "num_heads", default=0)
        relative = heads if getattr(config, "relative_attention_num_buckets", None) else 0
        return cls(get("num_hidden_layers", "n_layers", "num_layers"), hidden, inter, int(config.num_labels),
                   heads=heads, relative_bias_heads=relative)

    @classmethod
    def reference_for(cls, snn_config) -> "AnnShape":
        h = snn_config.teacher_hidden_size
        return cls(snn_config.num_hidden_layers, h, 4 * h, snn_config.num_labels)

    @classmethod
    def bert_base(cls, num_labels: int = 2) -> "AnnShape":
        """BERT-base, the paper's ANN: 12 layers, width 768, intermediate 3072."""
        return cls(12, 768, 3072, num_labels)

    def bert_config(self, vocab_size: int, max_positions: int = 512):
        from transformers import BertConfig

        heads = self.heads or (self.hidden // 64 if self.hidden % 64 == 0 else 1)
        return BertConfig(vocab_size=vocab_size, hidden_size=self.hidden, num_hidden_layers=self.layers,
                          num_attention_heads=heads, intermediate_size=self.intermediate,
                          max_position_embeddings=max_positions, num_labels=self.num_labels)


def ann_layer_macs(L: int, d: int, f: int) -> int:
    """One BERT layer at L tokens: QKV 3Ld², QKᵀ and AV 2L²d, output Ld², FFN 2Ldf."""
    return 3 * L * d * d + 2 * L * L * d + L * d * d + 2 * L * d * f


def ann_layer_adds(L: int, shape: AnnShape) -> int:
    """One layer's additions that are operations of their own: a relative-position bias added to
    each of the L² scores of every biased head (MPNet), L²·H; 0 for BERT."""
    return L * L * shape.relative_bias_heads


def ann_ops(shape: AnnShape, lengths) -> tuple[list[Ops], Ops]:
    """Per-layer and head operations of the ANN, summed over sentences of the given lengths: MACs,
    and the relative-position bias additions as ACs (:class:`AnnShape`)."""
    per_layer = sum(ann_layer_macs(int(L), shape.hidden, shape.intermediate) for L in lengths)
    adds = sum(ann_layer_adds(int(L), shape) for L in lengths)
    head = len(lengths) * ((shape.hidden ** 2 if shape.pooler else 0) + shape.hidden * shape.num_labels)
    return [Ops(float(per_layer), float(adds)) for _ in range(shape.layers)], Ops(float(head))


def _values(x):
    """Per-sentence values as float64 numpy, or as they are when a tensor (the estimate keeps its
    gradient): every count below is written in operations both support."""
    return x.double() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def _block_sums(sums: dict, i: int) -> dict:
    try:
        return {g: _values(sums[f"layer{i}.{g}"]) for g in ROLES}
    except KeyError as e:
        raise SpikeBertError(f"no spike count for neuron group {e.args[0]}: the energy count reads the groups "
                             f"layer{{i}}.{{{','.join(ROLES)}}} of every block") from None


def _residual_fed(convention: str, i: int, L, d: int, f: int, T: int, stream, out, spike_input: bool) -> Ops:
    """q, k, v (reading the block's input) and fc1 (reading it plus the block's out spikes);
    ``stream`` is the spike count in the block's input (see the module docstring)."""
    if convention == "dense_residual":
        return Ops(T * L.sum() * d * (3 * d + f))
    qkv_spikes, fc1_spikes, macs = stream.sum(), stream.sum() + out.sum(), 0.0
    if convention == "paper" and i == 0:  # the first layer reads the encoded input: MACs, once
        qkv_spikes, macs = 0.0, L.sum() * 3 * d * d
    elif convention == "strict" and not spike_input:  # the real embedding, multiplied once per token
        macs = L.sum() * d * (3 * d + f)
    return Ops(macs, qkv_spikes * 3 * d + fc1_spikes * f)


def snn_ops(config, lengths, sums: dict, convention: str = HEADLINE) -> tuple[list[Ops], Ops]:
    """Per-layer and head operations of a SpikeBERT model under ``convention`` (one of
    :data:`CONVENTIONS`), summed over sentences; ``sums[name]`` holds each sentence's spike count of
    neuron group ``name`` (over T, its tokens and channels). The input is spikes when ``sums`` has
    the input group ``embed``. Lengths and sums may be numpy arrays or tensors (then the counts
    are tensors that keep their gradient: :func:`energy_ratio_estimate`)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)} (got {convention!r})")
    T, d, f = config.time_steps, config.hidden_size, config.intermediate_size
    L = _values(lengths)
    spike_input = INPUT_GROUP in sums
    stream = _values(sums[INPUT_GROUP]) if spike_input else L * 0.0
    layers = []
    for i in range(config.num_hidden_layers):
        s = _block_sums(sums, i)
        spike_ops = Ops(0.0, ((s["q"] + s["v"]) * L).sum() + (s["attn"].sum() + s["mlp1"].sum()) * d)
        layers.append(spike_ops + _residual_fed(convention, i, L, d, f, T, stream, s["out"], spike_input))
        stream = stream + s["out"] + s["mlp2"]
    return layers, Ops(float(len(L) * T * d * config.num_labels))
