"""Measuring a SpikeBERT model's energy on texts: spike levels counted per sentence and group,
firing rates (mean level) and non-zero shares, the operation counts of every convention
(:mod:`.rules`) against the ANN, and CPU times."""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from spikebert.analysis.energy.rules import (CONVENTIONS, E_AC_PJ, E_MAC_PJ, HEADLINE, HEADLINE_WHY, PAPER_FIGURES,
                                             AnnShape, Ops, ann_ops, snn_ops)
from spikebert.data.batching import MAX_LENGTH, Encoded, make_loader, pad_id, tokenize
from spikebert.errors import SpikeBertError
from spikebert.neurons.recording import per_sentence, token_mask
from spikebert.predict import BATCH_SIZE

CPU_NOTE = ("wall-clock time on this CPU, where spikes run as dense float matmuls: a CPU is not "
            "neuromorphic hardware, so it shows none of the energy saving estimated above")


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
    """One pass over ``batches``: each sentence's length, sum of spike levels per declared neuron
    group and predicted class, and the :class:`SpikeRecorder` of the whole pass (firing rates,
    non-zero shares)."""
    lengths, preds = np.zeros(n), np.zeros(n, dtype=np.int64)
    sums = {name: np.zeros(n) for name in model.neuron_groups()}
    index = None

    def add(name, spikes, mask):
        sums[name][index] += per_sentence(spikes if mask is None else spikes * token_mask(mask, spikes)).numpy()

    model.eval()
    with model.record_spikes() as rec, model.listen(add):
        for b in tqdm(batches, desc="counting spikes", disable=None, leave=False):
            index = b["index"].numpy()
            lengths[index] = b["attention_mask"].sum(1).numpy()
            preds[index] = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.argmax(-1).numpy()
    return lengths, sums, preds, rec


def split_group(name: str) -> tuple[str, str]:
    """``layer0.q`` → (``layer0``, ``q``); a group of its own, such as ``embed``, → (``embed``, ``embed``)."""
    row, _, group = name.partition(".")
    return row, group or name


def firing_rates(rec, names) -> dict[str, dict[str, float]]:
    """The recorder's rates nested by row (``embed``, ``layer{i}``) and group, in declared order."""
    rates, nested = rec.rates(), {}
    for name in names:
        row, group = split_group(name)
        nested.setdefault(row, {})[group] = rates.get(name, 0.0)
    return nested


def _pooled_rate(rec, names, counts=None) -> float:
    """The mean level per neuron-step over the groups ``names`` (``counts``: another of the
    recorder's counts, such as ``rec.nonzero``)."""
    counts = rec.spikes if counts is None else counts
    slots = sum(rec.slots.get(k, 0.0) for k in names)
    return sum(counts.get(k, 0.0) for k in names) / slots if slots else 0.0


def _ops_cells(prefix: str, o: Ops, e_mac: float, e_ac: float) -> dict:
    return {f"{prefix}_macs": o.macs, f"{prefix}_acs": o.acs, f"{prefix}_energy_mj": o.energy_mj(e_mac, e_ac)}


def _layer_rows(snn: dict, ann: tuple, rec, groups: list[str], n: int, e_mac: float, e_ac: float) -> list[dict]:
    """Per layer (and the head), per sentence: the strict (``snn_*``) and paper (``paper_*``)
    counts and the ANN's; a layer's firing rate pools its groups."""
    (s_layers, s_head), (p_layers, p_head), (a_layers, a_head) = snn["strict"], snn["paper"], ann
    rows = []
    for i in range(max(len(s_layers), len(a_layers))):
        row = {"layer": f"layer{i}"}
        if i < len(s_layers):
            mine = [g for g in groups if split_group(g)[0] == f"layer{i}"]
            row["firing_rate"], row["nonzero_share"] = _pooled_rate(rec, mine), _pooled_rate(rec, mine, rec.nonzero)
            row.update(_ops_cells("snn", s_layers[i] / n, e_mac, e_ac))
            row.update(_ops_cells("paper", p_layers[i] / n, e_mac, e_ac))
        if i < len(a_layers):
            row.update(ann_macs=a_layers[i].macs / n, ann_energy_mj=(a_layers[i] / n).energy_mj(e_mac, e_ac))
        rows.append(row)
    rows.append({"layer": "head", **_ops_cells("snn", s_head / n, e_mac, e_ac),
                 **_ops_cells("paper", p_head / n, e_mac, e_ac),
                 "ann_macs": a_head.macs / n, "ann_energy_mj": (a_head / n).energy_mj(e_mac, e_ac)})
    return rows


def _totals(cfg, lengths, sums, shape: AnnShape, e_mac: float, e_ac: float) -> dict:
    """Every convention's SNN total and the two ANN totals (the reference, BERT-base), per sentence."""
    n = len(lengths)
    snn = {c: snn_ops(cfg, lengths, sums, c) for c in CONVENTIONS}
    ann = ann_ops(shape, lengths)
    ann_total = sum(ann[0], ann[1]) / n
    base = AnnShape.bert_base(cfg.num_labels)
    base_layers, base_head = ann_ops(base, lengths)
    base_total = sum(base_layers, base_head) / n
    ann_mj, base_mj = ann_total.energy_mj(e_mac, e_ac), base_total.energy_mj(e_mac, e_ac)
    conventions = {}
    for c, (layers, head) in snn.items():
        total = sum(layers, head) / n
        mj = total.energy_mj(e_mac, e_ac)
        conventions[c] = {"macs": total.macs, "acs": total.acs, "energy_mj": mj, "energy_ratio": mj / ann_mj,
                          "bert_base_ratio": mj / base_mj}
    bert_base = {"layers": base.layers, "hidden": base.hidden, "intermediate": base.intermediate,
                 "macs": base_total.macs, "energy_mj": base_mj}
    return {"snn": snn, "ann": ann, "ann_total": ann_total, "ann_mj": ann_mj, "conventions": conventions,
            "bert_base": bert_base}


def _check_request(cfg, texts, batch_size: int, max_length: int):
    if not texts:
        raise SpikeBertError("no texts to measure")
    if batch_size < 1:
        raise SpikeBertError(f"batch size must be >= 1 (got {batch_size})")
    if max_length > cfg.max_position_embeddings:
        raise SpikeBertError(f"max length {max_length} exceeds the model's {cfg.max_position_embeddings} positions")


def _timing(model, ann, shape: AnnShape, batches, ann_batches, batch_size: int, max_length: int) -> dict:
    if ann is None:
        from transformers import BertForSequenceClassification

        ann = BertForSequenceClassification(shape.bert_config(model.config.vocab_size, max(512, max_length)))
    return {"snn_ms_per_sentence": ms_per_sentence(model, batches, "timing SNN"),
            "ann_ms_per_sentence": ms_per_sentence(ann, ann_batches, "timing ANN"),
            "batch_size": batch_size, "threads": torch.get_num_threads(), "note": CPU_NOTE}


def measure(model, tokenizer, texts: list[str], labels: list[int] | None = None, ann=None, ann_tokenizer=None,
            batch_size: int = BATCH_SIZE, max_length: int = MAX_LENGTH, e_mac: float = E_MAC_PJ, e_ac: float = E_AC_PJ,
            timing: bool = True, reference: str = "") -> dict:
    """Firing rates, operation counts (every convention of the module docstring), energies and CPU
    times of a SpikeBERT ``model`` on ``texts`` against ``ann`` (a loaded BERT classifier) or,
    without one, a BERT of the teacher's shape; and against a BERT-base on the same texts."""
    cfg, n = model.config, len(texts)
    _check_request(cfg, texts, batch_size, max_length)
    batches = _batches(tokenizer, texts, batch_size, max_length)
    lengths, sums, preds, rec = count_spikes(model, batches, n)
    groups = list(model.neuron_groups())
    shape = AnnShape.of(ann.config) if ann is not None else AnnShape.reference_for(cfg)
    t = _totals(cfg, lengths, sums, shape, e_mac, e_ac)
    strict, dense = t["conventions"]["strict"], t["conventions"]["dense_residual"]
    report = {
        "n": n, "tokens_per_sentence": float(lengths.mean()), "time_steps": cfg.time_steps,
        "input_encoding": cfg.input_encoding, "neuron": cfg.neuron, "e_mac_pj": e_mac, "e_ac_pj": e_ac,
        "snn_energy_mj": strict["energy_mj"], "ann_energy_mj": t["ann_mj"], "energy_ratio": strict["energy_ratio"],
        "snn": {k: strict[k] for k in ("macs", "acs", "energy_mj")},
        "snn_dense_residual": {k: dense[k] for k in ("macs", "acs", "energy_mj", "energy_ratio")},
        "conventions": t["conventions"], "headline": {"convention": HEADLINE, "why": HEADLINE_WHY},
        "ann": {"macs": t["ann_total"].macs, "energy_mj": t["ann_mj"],
                "reference": reference or "BERT of the teacher's shape", "layers": shape.layers,
                "hidden": shape.hidden, "intermediate": shape.intermediate},
        "bert_base": t["bert_base"], "paper_figures": dict(PAPER_FIGURES),
        "firing_rate": _pooled_rate(rec, groups), "firing_rates": firing_rates(rec, groups),
        "group_firing_rates": {g: rec.rates().get(g, 0.0) for g in groups},
        "spike_levels": cfg.spike_levels, "nonzero_share": _pooled_rate(rec, groups, rec.nonzero),
        "group_nonzero_shares": {g: rec.nonzero_shares().get(g, 0.0) for g in groups},
        "layers": _layer_rows(t["snn"], t["ann"], rec, groups, n, e_mac, e_ac),
    }
    if labels is not None and len(labels) == n and max(labels) < cfg.num_labels:
        report["accuracy"] = float((preds == np.asarray(labels)).mean())
    if timing:
        ann_batches = batches if ann_tokenizer is None else _batches(ann_tokenizer, texts, batch_size, max_length)
        report["timing"] = _timing(model, ann, shape, batches, ann_batches, batch_size, max_length)
    return report
