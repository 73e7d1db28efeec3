"""Theoretical energy of a SpikeBERT model against a BERT, from counted operations.

Operations are counted per sentence at its real (unpadded) token count L, then averaged over the
sentences. Energy = MACs × E_MAC + ACs × E_AC with E_MAC = 4.6 pJ and E_AC = 0.9 pJ (32-bit float
multiply-accumulate and add at 45 nm, Horowitz 2014), as in the SpikeBERT and Spikformer papers.

ANN (BERT of ``layers``, width d, intermediate f), per layer, all MACs:
    Q, K, V projections 3·L·d², attention scores Q·Kᵀ L²·d, weighted sum A·V L²·d,
    attention output L·d², feed-forward 2·L·d·f.
Plus the head: pooler d² and classifier d·C. Embedding lookups, LayerNorm, softmax, GELU, biases
and residual additions are not counted (nor are they for the SNN). For BERT-base (12 layers,
d = 768, f = 3072) at L = 128 the encoder is 11.17 G MACs and the head 0.59 M: 11.2 G, 51.4 mJ,
the paper's BERT figure.

SNN (SpikeBERT, T time steps), per block. An operation with a spike operand accumulates instead
of multiplying: every spike (a 1 at some step, token and channel) adds one weight or value to each
of its fan-out outputs, so ACs = (sum of that operand's values over all T steps, real tokens and
channels) × fan-out; an operation with no spike operand multiplies (MACs).
    Q·Kᵀ      spike operand Q, fan-out = L (one score per real key)        ACs  ΣQ·L
    (QKᵀ)·V   spike operand V, fan-out = L (one output per real query)     ACs  ΣV·L
    out Linear  input: attention-LIF spikes, fan-out d                     ACs  ΣA·d
    MLP fc2     input: fc1-LIF spikes, fan-out d                           ACs  ΣM1·d
(K is also binary but is the second operand of Q·Kᵀ: each of its products is counted once, via Q.
The model's forward may compute Q·(KᵀV) when L exceeds the head width; the count follows the
defined association (QKᵀ)V.)

The layers fed by the residual stream (q, k, v and MLP fc1) need care: that stream is the token
embedding, the same at every step, plus the spike outputs (out, mlp2) of the blocks before, whose
sum is a count of spikes. By linearity W·x = W·emb + W·spikes, and a spike-driven implementation
computes W·emb once per token (MACs, L·d·d_out, not T times: it does not change over time) and
W·spikes as accumulates (Σspikes·d_out); fc1 also reads this block's out spikes. That is the
headline count (``snn``, ``snn_energy_mj``, ``energy_ratio``): it applies the rule above operand
by operand, and it is how Spikformer-style papers count an encoding layer (MACs) followed by
spike-driven layers (ACs). Beside it, ``snn_dense_residual`` counts those four layers as dense
multiplies at every step (T·L·d·d_out MACs): at T = 4 that alone exceeds the ANN's whole count,
whatever the firing rates. The head (a classifier at each step) is T·d·C MACs. Spike sums are
measured per sentence with forward hooks on the LIF modules; firing rates come from
:class:`~spikebert.neurons.lif.SpikeRecorder`.

Without a given teacher the ANN reference is a BERT of the teacher's shape: as many layers as the
student, width ``teacher_hidden_size``, intermediate 4 × width (BERT's ratio), 64-wide heads.
Wall-clock CPU time is measured too: a CPU runs spikes as dense float matmuls, so it shows none of
the saving the energy model assumes for neuromorphic hardware.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from spikebert.data.batching import Encoded, make_loader, pad_id, tokenize
from spikebert.errors import SpikeBertError
from spikebert.analysis.raster import GROUPS, lif_hooks

E_MAC_PJ = 4.6
E_AC_PJ = 0.9
CPU_NOTE = ("wall-clock time on this CPU, where spikes run as dense float matmuls: a CPU is not "
            "neuromorphic hardware, so it shows none of the energy saving estimated above")


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
    """What the ANN count needs of a BERT-family model."""

    layers: int
    hidden: int
    intermediate: int
    num_labels: int = 2
    pooler: bool = True

    @classmethod
    def of(cls, config) -> "AnnShape":
        def get(*names):
            for n in names:
                if getattr(config, n, None) is not None:
                    return int(getattr(config, n))
            raise SpikeBertError(f"a {config.model_type} config has none of {', '.join(names)}: cannot count it")

        hidden = get("hidden_size", "dim", "d_model")
        inter = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None) or 4 * hidden
        return cls(get("num_hidden_layers", "n_layers", "num_layers"), hidden, int(inter), int(config.num_labels))

    @classmethod
    def reference_for(cls, snn_config) -> "AnnShape":
        h = snn_config.teacher_hidden_size
        return cls(snn_config.num_hidden_layers, h, 4 * h, snn_config.num_labels)

    def bert_config(self, vocab_size: int, max_positions: int = 512):
        from transformers import BertConfig

        heads = self.hidden // 64 if self.hidden % 64 == 0 else 1
        return BertConfig(vocab_size=vocab_size, hidden_size=self.hidden, num_hidden_layers=self.layers,
                          num_attention_heads=heads, intermediate_size=self.intermediate,
                          max_position_embeddings=max_positions, num_labels=self.num_labels)


def ann_layer_macs(L: int, d: int, f: int) -> int:
    """One BERT layer at L tokens: QKV 3Ld², QKᵀ and AV 2L²d, output Ld², FFN 2Ldf."""
    return 3 * L * d * d + 2 * L * L * d + L * d * d + 2 * L * d * f


def ann_ops(shape: AnnShape, lengths) -> tuple[list[Ops], Ops]:
    """Per-layer and head operations of the ANN, summed over sentences of the given lengths."""
    per_layer = sum(ann_layer_macs(int(L), shape.hidden, shape.intermediate) for L in lengths)
    head = len(lengths) * ((shape.hidden ** 2 if shape.pooler else 0) + shape.hidden * shape.num_labels)
    return [Ops(float(per_layer)) for _ in range(shape.layers)], Ops(float(head))


def snn_ops(config, lengths, sums: dict, spike_residual: bool = False) -> tuple[list[Ops], Ops]:
    """Per-layer and head operations of a SpikeBERT model, summed over sentences; ``sums[name]``
    holds each sentence's spike count of neuron group ``name`` (over T, its tokens and channels).

    ``spike_residual`` (the headline): the residual-fed layers split into the embedding part (MACs,
    once) and the earlier blocks' spikes (ACs); without it they are dense multiplies at every step."""
    T, d, f = config.time_steps, config.hidden_size, config.intermediate_size
    L = np.asarray(lengths, dtype=np.float64)
    layers, earlier = [], np.zeros_like(L)  # spikes of earlier blocks' out and mlp2 groups
    for i in range(config.num_hidden_layers):
        s = {g: np.asarray(sums[f"layer{i}.{g}"], dtype=np.float64) for g in GROUPS}
        acs = ((s["q"] + s["v"]) * L).sum() + (s["attn"].sum() + s["mlp1"].sum()) * d
        if spike_residual:  # q, k, v, fc1 read emb (once) + earlier spikes; fc1 also this block's out
            macs = L.sum() * d * (3 * d + f)
            acs += earlier.sum() * (3 * d + f) + s["out"].sum() * f
        else:
            macs = T * L.sum() * (3 * d * d + d * f)
        earlier = earlier + s["out"] + s["mlp2"]
        layers.append(Ops(float(macs), float(acs)))
    return layers, Ops(float(len(L) * T * d * config.num_labels))


def _batches(tokenizer, texts, batch_size: int, max_length: int) -> list[dict]:
    ids = tokenize(tokenizer, texts, max_length=max_length)
    return list(make_loader(Encoded(ids, pad_token_id=pad_id(tokenizer)), batch_size, shuffle=False))


@torch.no_grad()
def ms_per_sentence(model, batches: list[dict], desc: str) -> float:
    """Wall-clock inference time per sentence over ``batches`` (after one warm-up batch)."""
    model.eval()
    model(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"])
    n, start = 0, time.perf_counter()
    for b in tqdm(batches, desc=desc, disable=None, leave=False):
        model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        n += len(b["input_ids"])
    return (time.perf_counter() - start) * 1000.0 / n


@torch.no_grad()
def count_spikes(model, batches: list[dict], n: int):
    """One pass over ``batches``: each sentence's length, spike sum per neuron group and predicted
    class, and the :class:`SpikeRecorder` of the whole pass (firing rates)."""
    cfg = model.config
    lengths, preds = np.zeros(n), np.zeros(n, dtype=np.int64)
    sums = {f"layer{i}.{g}": np.zeros(n) for i in range(cfg.num_hidden_layers) for g in GROUPS}
    index = None

    def per_sentence(name, spikes, mask):
        m = mask.to(spikes.dtype)[None, :, :, None]
        sums[name][index] += (spikes * m).sum(dim=(0, 2, 3)).numpy()

    model.eval()
    with model.record_spikes() as rec, lif_hooks(model, per_sentence):
        for b in tqdm(batches, desc="counting spikes", disable=None, leave=False):
            index = b["index"].numpy()
            lengths[index] = b["attention_mask"].sum(1).numpy()
            preds[index] = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.argmax(-1).numpy()
    return lengths, sums, preds, rec


def measure(model, tokenizer, texts: list[str], labels: list[int] | None = None, ann=None, ann_tokenizer=None,
            batch_size: int = 32, max_length: int = 128, e_mac: float = E_MAC_PJ, e_ac: float = E_AC_PJ,
            timing: bool = True, reference: str = "") -> dict:
    """Firing rates, operation counts, energies and CPU times of a SpikeBERT ``model`` on ``texts``
    against ``ann`` (a loaded BERT classifier) or, without one, a BERT of the teacher's shape."""
    cfg, n = model.config, len(texts)
    if not texts:
        raise SpikeBertError("no texts to measure")
    if batch_size < 1:
        raise SpikeBertError(f"batch size must be >= 1 (got {batch_size})")
    if max_length > cfg.max_position_embeddings:
        raise SpikeBertError(f"max length {max_length} exceeds the model's {cfg.max_position_embeddings} positions")
    batches = _batches(tokenizer, texts, batch_size, max_length)
    lengths, sums, preds, rec = count_spikes(model, batches, n)
    shape = AnnShape.of(ann.config) if ann is not None else AnnShape.reference_for(cfg)
    s_layers, s_head = snn_ops(cfg, lengths, sums, spike_residual=True)
    a_layers, a_head = ann_ops(shape, lengths)
    snn_total = sum(s_layers, s_head) / n
    ann_total = sum(a_layers, a_head) / n
    rates = rec.rates()
    rows = []
    for i in range(max(len(s_layers), len(a_layers))):
        row = {"layer": f"layer{i}"}
        if i < len(s_layers):
            names = [f"layer{i}.{g}" for g in GROUPS]
            slots = sum(rec.slots[k] for k in names)
            o = s_layers[i] / n
            row.update(firing_rate=sum(rec.spikes[k] for k in names) / slots if slots else 0.0,
                       snn_macs=o.macs, snn_acs=o.acs, snn_energy_mj=o.energy_mj(e_mac, e_ac))
        if i < len(a_layers):
            row.update(ann_macs=a_layers[i].macs / n, ann_energy_mj=(a_layers[i] / n).energy_mj(e_mac, e_ac))
        rows.append(row)
    sh, ah = s_head / n, a_head / n
    rows.append({"layer": "head", "snn_macs": sh.macs, "snn_acs": 0.0, "snn_energy_mj": sh.energy_mj(e_mac, e_ac),
                 "ann_macs": ah.macs, "ann_energy_mj": ah.energy_mj(e_mac, e_ac)})
    snn_mj, ann_mj = snn_total.energy_mj(e_mac, e_ac), ann_total.energy_mj(e_mac, e_ac)
    alt_layers, alt_head = snn_ops(cfg, lengths, sums, spike_residual=False)
    alt = sum(alt_layers, alt_head) / n
    report = {
        "n": n, "tokens_per_sentence": float(lengths.mean()), "time_steps": cfg.time_steps,
        "e_mac_pj": e_mac, "e_ac_pj": e_ac,
        "snn_energy_mj": snn_mj, "ann_energy_mj": ann_mj, "energy_ratio": snn_mj / ann_mj,
        "snn": {"macs": snn_total.macs, "acs": snn_total.acs, "energy_mj": snn_mj},
        "snn_dense_residual": {"macs": alt.macs, "acs": alt.acs, "energy_mj": alt.energy_mj(e_mac, e_ac),
                               "energy_ratio": alt.energy_mj(e_mac, e_ac) / ann_mj},
        "ann": {"macs": ann_total.macs, "energy_mj": ann_mj, "reference": reference or "BERT of the teacher's shape",
                "layers": shape.layers, "hidden": shape.hidden, "intermediate": shape.intermediate},
        "firing_rate": sum(rec.spikes.values()) / sum(rec.slots.values()),
        "firing_rates": {f"layer{i}": {g: rates[f"layer{i}.{g}"] for g in GROUPS}
                         for i in range(cfg.num_hidden_layers)},
        "layers": rows,
    }
    if labels is not None and len(labels) == n and max(labels) < cfg.num_labels:
        report["accuracy"] = float((preds == np.asarray(labels)).mean())
    if timing:
        if ann is None:
            from transformers import BertForSequenceClassification

            ann = BertForSequenceClassification(shape.bert_config(cfg.vocab_size, max(512, max_length)))
        ann_batches = batches if ann_tokenizer is None else _batches(
            ann_tokenizer, texts, batch_size, max_length)
        report["timing"] = {"snn_ms_per_sentence": ms_per_sentence(model, batches, "timing SNN"),
                            "ann_ms_per_sentence": ms_per_sentence(ann, ann_batches, "timing ANN"),
                            "batch_size": batch_size, "threads": torch.get_num_threads(), "note": CPU_NOTE}
    return report


def save_plots(r: dict, output) -> list[str]:
    """``firing_rates.png`` (per layer and group) and ``energy.png`` (SNN vs ANN) in ``output``."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    layers = list(r["firing_rates"])
    x = np.arange(len(layers))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(layers) + 2), 4.5))
    w = 0.8 / len(GROUPS)
    for j, g in enumerate(GROUPS):
        ax.bar(x + (j - (len(GROUPS) - 1) / 2) * w, [r["firing_rates"][l][g] for l in layers], w, label=g)
    ax.set_xticks(x, layers)
    ax.set_ylabel("firing rate (spikes per neuron and step)")
    ax.set_title(f"Firing rates over {r['n']} sentences (T = {r['time_steps']})")
    ax.legend(ncol=len(GROUPS), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    fig.tight_layout()
    fig.savefig(out / "firing_rates.png", dpi=120)
    plt.close(fig)

    rows = r["layers"]
    em, ea = r["e_mac_pj"] * 1e-9, r["e_ac_pj"] * 1e-9
    names = [row["layer"] for row in rows]
    x = np.arange(len(rows))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(max(9, 1.1 * len(rows) + 5), 4.5),
                                  gridspec_kw={"width_ratios": [3, 1]})
    mac_part = [row.get("snn_macs", 0) * em for row in rows]
    ax.bar(x - 0.2, mac_part, 0.4, label="SNN, MACs", color="tab:orange")
    ax.bar(x - 0.2, [row.get("snn_acs", 0) * ea for row in rows], 0.4, bottom=mac_part, label="SNN, ACs", color="gold")
    ax.bar(x + 0.2, [row.get("ann_energy_mj", 0) for row in rows], 0.4, label="ANN", color="tab:blue")
    ax.set_xticks(x, names)
    ax.set_ylabel("energy per sentence (mJ)")
    ax.legend()
    ax2.bar(["SNN", "ANN"], [r["snn_energy_mj"], r["ann_energy_mj"]], color=["tab:orange", "tab:blue"])
    ax2.set_title(f"total: SNN {r['energy_ratio']:.1%} of ANN", fontsize=10)
    fig.suptitle(f"Estimated energy (E_MAC {r['e_mac_pj']} pJ, E_AC {r['e_ac_pj']} pJ), "
                 f"{r['n']} sentences, {r['tokens_per_sentence']:.1f} tokens on average")
    if "timing" in r:
        t = r["timing"]
        fig.text(0.01, 0.01, f"CPU: SNN {t['snn_ms_per_sentence']:.1f} ms, ANN {t['ann_ms_per_sentence']:.1f} ms per "
                 "sentence. A CPU is not neuromorphic hardware: it runs spikes as dense matmuls.", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(out / "energy.png", dpi=120)
    plt.close(fig)
    return [str(out / "firing_rates.png"), str(out / "energy.png")]
