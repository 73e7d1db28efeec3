"""Operation counts, energy and the ``spikebert energy`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import lif_by_hand
from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
from spikebert.analysis.energy import E_MAC_PJ, AnnShape, ann_ops, measure

TEXTS = ["a gorgeous , witty , seductive movie .", "dull .",
         "the film is strictly routine , but the performances are as good as they get ."]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_snn(**kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=30522, num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_labels=2,
               attention_scale=1.0, threshold=0.5)  # fires in every group, attention included
    cfg.update(kw)
    return SpikeBertForSequenceClassification(SpikeBertConfig(**cfg)).eval()


@pytest.fixture(scope="module")
def snn_dir(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("snn")
    tiny_snn().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("bert")
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                     intermediate_size=64, num_labels=2)
    BertForSequenceClassification(cfg).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------- ANN


def test_bert_base_at_128_tokens_is_the_papers_figure():
    layers, head = ann_ops(AnnShape(layers=12, hidden=768, intermediate=3072), [128])
    L, d = 128, 768
    per_layer = 3 * L * d * d + 2 * L * L * d + L * d * d + 2 * L * d * 4 * d
    assert all(o.macs == per_layer for o in layers) and len(layers) == 12
    assert sum(o.macs for o in layers) == 11_173_625_856
    assert head.macs == 768 * 768 + 768 * 2  # pooler and classifier: 0.005 % of the total
    total = sum(layers, head)
    assert total.macs == pytest.approx(11.2e9, rel=0.005)
    assert total.energy_mj() == pytest.approx(51.4, abs=0.05)
    assert total.acs == 0


def test_ann_two_layers_by_hand():
    layers, head = ann_ops(AnnShape(layers=2, hidden=8, intermediate=32, num_labels=3), [5, 3])
    # L=5: QKV 3·5·64 = 960, QKᵀ 5·5·8 = 200, AV 200, output 5·64 = 320, FFN 2·5·8·32 = 2560 → 4240
    # L=3: QKV 576, QKᵀ 72, AV 72, output 192, FFN 1536 → 2448
    assert [o.macs for o in layers] == [4240 + 2448] * 2
    assert head.macs == 2 * (64 + 8 * 3)
    assert sum(layers, head).energy_mj(e_mac=1.0) == pytest.approx((2 * 6688 + 176) * 1e-9)


def test_ann_count_equals_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=96, num_labels=3, attn_implementation="eager")
    model = BertForSequenceClassification(cfg).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(torch.randint(5, 100, (1, 11)))
    layers, head = ann_ops(AnnShape.of(model.config), [11])
    assert sum(layers, head).macs == fc.get_total_flops() / 2


# ---------------------------------------------------------------------------------------------- SNN


def test_every_rule_by_hand_on_given_spike_counts():
    """Two blocks, d = 2, f = 4, T = 2, C = 2, one sentence of L = 3 tokens, spike counts given.
    Per block the spike-operand operations are (Σq + Σv)·L + (Σattn + Σmlp1)·d:
    block 0 (2+3)·3 + (4+6)·2 = 35, block 1 (1+0)·3 + (2+4)·2 = 15; the head T·d·C = 8 MACs.
    The residual-fed layers (q, k, v: fan-out 3d = 6; fc1: f = 4; together 3d + f = 10) read the
    block input's spikes S: S_0 = 0, S_1 = Σout_0 + Σmlp2_0 = 3; plus E = 5 input spikes with spike input."""
    from types import SimpleNamespace

    from spikebert.analysis.energy import snn_ops

    cfg = SimpleNamespace(time_steps=2, hidden_size=2, intermediate_size=4, num_hidden_layers=2, num_labels=2)
    blocks = {0: dict(q=2, k=9, v=3, attn=4, out=1, mlp1=6, mlp2=2), 1: dict(q=1, k=9, v=0, attn=2, out=3, mlp1=4, mlp2=1)}
    real = {f"layer{i}.{g}": [float(c)] for i, counts in blocks.items() for g, c in counts.items()}
    spike = {"embed": [5.0], **real}

    def count(sums, convention):
        layers, head = snn_ops(cfg, [3], sums, convention)
        assert (head.macs, head.acs) == (8, 0)
        return [(o.macs, o.acs) for o in layers]

    # strict, real input: the embedding multiplied once per token, L·d·(3d + f) = 60 MACs a block;
    # ACs 35 + S_0·10 + Σout_0·4 = 39, and 15 + 3·10 + 3·4 = 57
    assert count(real, "strict") == [(60, 39), (60, 57)]
    # strict, spike input: no MAC; ACs 35 + (5 + 0)·10 + 1·4 = 89, and 15 + (5 + 3)·10 + 3·4 = 107
    assert count(spike, "strict") == [(0, 89), (0, 107)]
    # paper, real input: block 0's q, k, v as MACs L·3d² = 36, fc1 reads out_0's spikes: 35 + 1·4 = 39;
    # block 1 reads S_1: 15 + 3·6 + (3 + 3)·4 = 57 (the embedding's share has no firing rate: not counted)
    assert count(real, "paper") == [(36, 39), (0, 57)]
    # paper, spike input: block 0: 36 MACs, 35 + (5 + 1)·4 = 59; block 1: 15 + (5 + 3)·6 + (5 + 3 + 3)·4 = 107
    assert count(spike, "paper") == [(36, 59), (0, 107)]
    # dense residual, either input: T·L·d·(3d + f) = 120 MACs a block, the spike-operand ACs
    assert count(real, "dense_residual") == count(spike, "dense_residual") == [(120, 35), (120, 15)]
    # energies: strict real (128 MACs, 96 ACs), strict spike (8 MACs, 196 ACs)
    strict_real = sum(snn_ops(cfg, [3], real, "strict")[0], snn_ops(cfg, [3], real, "strict")[1])
    assert strict_real.energy_mj() == pytest.approx((128 * 4.6 + 96 * 0.9) * 1e-9)
    strict_spike = sum(snn_ops(cfg, [3], spike, "strict")[0], snn_ops(cfg, [3], spike, "strict")[1])
    assert strict_spike.energy_mj() == pytest.approx((8 * 4.6 + 196 * 0.9) * 1e-9)
    with pytest.raises(ValueError, match="convention"):
        snn_ops(cfg, [3], real, "optimistic")


def input_spikes(model, ids, levels) -> float:
    """The input group's spikes over T, recomputed from the embedding: H(x) at each step (spike),
    a LIF driven by LayerNorm(x) (neuron; the hooked ``embed`` neuron's ``levels`` for another
    neuron), none (real)."""
    cfg, x = model.config, model.spikebert.embed(ids)
    if cfg.input_encoding == "spike":
        return cfg.time_steps * float((x >= 0).sum())
    if cfg.input_encoding == "neuron" and cfg.neuron != "lif":
        return levels("embed")
    if cfg.input_encoding == "neuron":
        return float(lif_by_hand(model.spikebert.input_encoder.norm(x), cfg.time_steps, cfg.tau, cfg.threshold).sum())
    return 0.0


def hand_count(model, tokenizer, texts):
    """Spikes captured with plain forward hooks (the input spikes recomputed from the embedding);
    every operation counted from its definition, the paper's as fr·T·FLOPs at measured rates.
    A spike's cost is its level: an int neuron's output value (a count), one for any non-zero
    output of the others (a bispike spike of either sign, whatever its amplitude)."""
    from spikebert.neurons.lif import LIF

    def levels(name):
        out = spikes[name]
        return float(out.sum() if model.config.neuron == "int" else (out != 0).sum())

    spikes = {}
    hooks = [m.register_forward_hook(lambda mod, args, out: spikes.__setitem__(mod.name, out.clone()))
             for m in model.modules() if isinstance(m, LIF)]
    cfg = model.config
    T, d, f = cfg.time_steps, cfg.hidden_size, cfg.intermediate_size
    counts = {c: np.zeros((cfg.num_hidden_layers, 2)) for c in ("strict", "paper", "dense")}  # (MACs, ACs)
    try:
        for text in texts:  # one sentence at a time: no padding at all
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            L = ids.shape[1]
            with torch.no_grad():
                model(ids, torch.ones_like(ids))
                E = input_spikes(model, ids, levels)
            S = 0.0
            for i in range(cfg.num_hidden_layers):
                n = {g: levels(f"layer{i}.{g}") for g in ("q", "v", "attn", "out", "mlp1", "mlp2")}
                spike_acs = n["q"] * L + n["v"] * L + n["attn"] * d + n["mlp1"] * d
                counts["dense"][i] += (T * L * d * (3 * d + f), spike_acs)
                real_macs = L * d * (3 * d + f) if cfg.input_encoding == "real" else 0.0
                counts["strict"][i] += (real_macs, spike_acs + (E + S) * (3 * d + f) + n["out"] * f)
                fr = {g: n[g] / (T * L * (f if g == "mlp1" else d)) for g in n}  # measured firing rates
                fr_x, fr_fc1 = (E + S) / (T * L * d), (E + S + n["out"]) / (T * L * d)  # the residual stream's
                paper_acs = (fr["q"] * T * L * L * d + fr["v"] * T * L * L * d + fr["attn"] * T * L * d * d
                             + fr["mlp1"] * T * L * f * d + fr_fc1 * T * L * d * f)
                if i == 0:
                    counts["paper"][i] += (L * 3 * d * d, paper_acs)
                else:
                    counts["paper"][i] += (0.0, paper_acs + fr_x * T * L * d * 3 * d)
                S += n["out"] + n["mlp2"]
    finally:
        for h in hooks:
            h.remove()
    return counts


NEURON_CASES = [("lif", "real"), ("lif", "spike"), ("lif", "neuron"), ("int", "real"), ("int", "neuron"),
                ("bispike", "spike"), ("bispike", "neuron")]


def tiny_of(neuron, encoding):
    """``tiny_snn`` with ``neuron``: int at D = 3, bispike with amplitudes other than 1 (they cost nothing)."""
    model = tiny_snn(input_encoding=encoding, neuron=neuron, **({"spike_levels": 3} if neuron == "int" else {}))
    with torch.no_grad():
        for i, m in enumerate(m for m in model.modules() if hasattr(m, "gain") and m.gain() is not None):
            m.gain().fill_(0.6 + 0.1 * (i % 5))
    return model


@pytest.mark.parametrize("neuron,encoding", NEURON_CASES)
def test_snn_two_layers_equal_a_count_by_hand(tokenizer, neuron, encoding):
    from spikebert.analysis.energy import ann_layer_macs

    model = tiny_of(neuron, encoding)
    counts = hand_count(model, tokenizer, TEXTS)
    r = measure(model, tokenizer, TEXTS, batch_size=2, timing=False)  # padded batches
    if neuron != "lif":  # spikes beyond one bit, or of two signs, were fired: the count saw them
        assert r["neuron"] == neuron and r["spike_levels"] == (3 if neuron == "int" else None)
        assert 0 < r["nonzero_share"] < 1 and set(r["group_nonzero_shares"]) == set(model.neuron_groups())
        if neuron == "int":
            assert r["firing_rate"] > r["nonzero_share"]  # some counts above 1
        else:
            assert r["firing_rate"] == pytest.approx(r["nonzero_share"])
    assert all(rate > 0 for groups in r["firing_rates"].values() for rate in groups.values())
    assert ("embed" in r["firing_rates"]) is (encoding != "real") and r["input_encoding"] == encoding
    n = len(TEXTS)
    rows = r["layers"]
    for prefix, c in (("snn", "strict"), ("paper", "paper")):
        assert [row[f"{prefix}_macs"] * n for row in rows[:2]] == pytest.approx(list(counts[c][:, 0])), c
        assert [row[f"{prefix}_acs"] * n for row in rows[:2]] == pytest.approx(list(counts[c][:, 1])), c
    head = n * model.config.time_steps * 64 * 2
    for c, key in (("strict", "strict"), ("paper", "paper"), ("dense", "dense_residual")):
        conv = r["conventions"][key]
        assert conv["macs"] * n == pytest.approx(counts[c][:, 0].sum() + head), c
        assert conv["acs"] * n == pytest.approx(counts[c][:, 1].sum()), c
        assert conv["energy_mj"] == pytest.approx((conv["macs"] * 4.6 + conv["acs"] * 0.9) * 1e-9)
        assert conv["energy_ratio"] == pytest.approx(conv["energy_mj"] / r["ann_energy_mj"])
    # the headline is the strict rule; the old keys stay
    assert r["headline"]["convention"] == "strict" and r["headline"]["why"]
    assert r["snn"]["macs"] == r["conventions"]["strict"]["macs"] and r["snn_energy_mj"] == r["conventions"]["strict"]["energy_mj"]
    assert r["snn_dense_residual"]["macs"] == r["conventions"]["dense_residual"]["macs"]
    if encoding != "real":
        assert r["conventions"]["strict"]["macs"] * n == head  # a table read, then accumulates only
    # the reference BERT: the student's depth, teacher width (= 64 here), intermediate 4×
    lengths = [len(tokenizer(t)["input_ids"]) for t in TEXTS]
    ann = sum(3 * L * 64 ** 2 + 2 * L * L * 64 + L * 64 ** 2 + 2 * L * 64 * 256 for L in lengths) * 2
    assert r["ann"]["macs"] * n == pytest.approx(ann + n * (64 * 64 + 64 * 2))
    assert r["energy_ratio"] == pytest.approx(r["snn_energy_mj"] / r["ann_energy_mj"])
    assert r["tokens_per_sentence"] == pytest.approx(np.mean(lengths))
    # BERT-base of the paper's shape on the same texts, beside the paper's own figures
    base = sum(ann_layer_macs(L, 768, 3072) for L in lengths) * 12 + n * (768 * 768 + 768 * 2)
    assert r["bert_base"]["macs"] * n == pytest.approx(base)
    for c in ("strict", "paper"):
        assert r["conventions"][c]["bert_base_ratio"] == pytest.approx(
            r["conventions"][c]["energy_mj"] / r["bert_base"]["energy_mj"])
    assert r["paper_figures"]["energy_ratio"] == pytest.approx(0.278, abs=5e-4)


@pytest.mark.parametrize("neuron,encoding", NEURON_CASES)
def test_counts_and_rates_do_not_depend_on_padding(tokenizer, neuron, encoding):
    model = tiny_of(neuron, encoding)
    alone = measure(model, tokenizer, TEXTS, batch_size=1, timing=False)
    padded = measure(model, tokenizer, TEXTS, batch_size=3, timing=False)
    assert padded["snn"] == pytest.approx(alone["snn"])
    for convention, counted in alone["conventions"].items():
        assert padded["conventions"][convention] == pytest.approx(counted), convention
    for layer, groups in alone["firing_rates"].items():
        assert padded["firing_rates"][layer] == pytest.approx(groups)
    with torch.no_grad(), model.record_spikes() as rec:  # the recorder's own rates
        for t in TEXTS:
            ids = tokenizer(t, return_tensors="pt")["input_ids"]
            model(ids, torch.ones_like(ids))
    assert padded["firing_rates"]["layer1"] == pytest.approx({k.partition(".")[2]: v for k, v in rec.rates().items()
                                                              if k.startswith("layer1.")})
    assert padded["group_firing_rates"] == pytest.approx(rec.rates())
    assert list(padded["group_firing_rates"]) == list(model.neuron_groups())
    if encoding != "real":
        assert padded["firing_rates"]["embed"] == pytest.approx({"embed": rec.rates()["embed"]})


def test_energy_constants_are_settable(tokenizer):
    r = measure(tiny_snn(), tokenizer, TEXTS[:1], e_mac=1.0, e_ac=2.0, timing=False)
    assert r["snn_energy_mj"] == pytest.approx((r["snn"]["macs"] + 2 * r["snn"]["acs"]) * 1e-9)
    assert r["ann_energy_mj"] == pytest.approx(r["ann"]["macs"] * 1e-9)
    assert E_MAC_PJ == 4.6


# ---------------------------------------------------------------------------------------------- CLI


def run(capsys, *args):
    from spikebert.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_energy_command_json(snn_dir, data_dir, capsys):
    code, out, err = run(capsys, "energy", "--model", str(snn_dir), "--task", "sst2", "--data-dir", str(data_dir),
                         "--limit", "12", "--batch-size", "4", "--json")
    assert code == 0, err
    report = json.loads(out)  # exactly one JSON object on stdout
    assert out.strip().count("\n") == 0
    assert report["n"] == 12
    for key in ("snn_energy_mj", "ann_energy_mj", "energy_ratio", "firing_rates", "timing", "accuracy"):
        assert key in report
    assert set(report["firing_rates"]) == {"layer0", "layer1"}
    assert set(report["firing_rates"]["layer0"]) == {"q", "k", "v", "attn", "out", "mlp1", "mlp2"}
    assert report["energy_ratio"] == pytest.approx(report["snn_energy_mj"] / report["ann_energy_mj"])
    assert report["timing"]["snn_ms_per_sentence"] > 0 and report["timing"]["ann_ms_per_sentence"] > 0
    assert "neuromorphic" in report["timing"]["note"]
    folder = snn_dir / "energy"  # the default output folder
    for name in ("firing_rates.png", "energy.png", "energy.json"):
        assert (folder / name).stat().st_size > 0
    assert json.loads((folder / "energy.json").read_text())["n"] == 12


def test_energy_command_table_with_teacher_and_file(snn_dir, bert_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "energy", "--model", str(snn_dir), "--file", str(texts), "--teacher", str(bert_dir),
                         "--output", str(tmp_path / "out"), "--e-mac", "3.7", "--no-timing")
    assert code == 0, err
    assert "SNN / ANN energy" in out and "layer2" in out  # the teacher has 3 layers, the student 2
    report = json.loads((tmp_path / "out" / "energy.json").read_text())
    assert report["ann"]["layers"] == 3 and report["ann"]["hidden"] == 32
    assert report["ann"]["reference"].startswith("teacher")
    assert report["e_mac_pj"] == 3.7 and "timing" not in report


def test_energy_command_errors(snn_dir, bert_dir, tmp_path, capsys):
    texts = tmp_path / "t.txt"
    texts.write_text("fine .\n", encoding="utf-8")
    code, _, err = run(capsys, "energy", "--model", str(bert_dir), "--file", str(texts))
    assert code == 2 and "no spiking neurons" in err
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == err.strip().splitlines()[-1:]
    code, _, err = run(capsys, "energy", "--model", str(snn_dir), "--file", str(texts), "--teacher", str(snn_dir))
    assert code == 2 and "must be an ANN" in err
    code, _, err = run(capsys, "energy", "--model", str(snn_dir))
    assert code == 2 and "--task" in err


def test_energy_command_runs_the_model_at_the_given_time_steps(snn_dir, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    reports = {}
    for T in (1, 3):
        code, out, err = run(capsys, "energy", "--model", str(snn_dir), "--file", str(texts), "--no-timing",
                             "--time-steps", str(T), "--output", str(tmp_path / f"T{T}"), "--json")
        assert code == 0, err
        reports[T] = json.loads(out)
    assert reports[1]["time_steps"] == 1 and reports[3]["time_steps"] == 3
    # the first step is the same at any T, so three steps cost more than one
    assert reports[3]["snn_energy_mj"] > reports[1]["snn_energy_mj"]
    code, _, err = run(capsys, "energy", "--model", str(snn_dir), "--file", str(texts), "--time-steps", "0")
    assert code == 2 and "--time-steps" in err


# ----------------------------------------------------------------------------- the energy penalty


@pytest.mark.parametrize("neuron,encoding", NEURON_CASES)
def test_energy_estimate_is_the_measured_ratio_and_back_propagates(tokenizer, neuron, encoding):
    """The differentiable estimate of a batch is the strict-rule ratio ``measure`` reports for the
    same texts (no teacher given: both against a BERT of the teacher's width at the student's
    depth; spike levels counted, amplitudes not), and its gradient reaches the weights that make
    the spikes."""
    from spikebert.analysis.energy import energy_ratio_estimate
    from spikebert.neurons.recording import RateMeter

    model = tiny_of(neuron, encoding)
    measured = measure(model, tokenizer, TEXTS, batch_size=3, timing=False)["energy_ratio"]
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with model.listen(RateMeter()) as meter:
        model(batch["input_ids"], batch["attention_mask"])
    estimate = energy_ratio_estimate(model, batch["attention_mask"], meter)
    assert estimate.requires_grad and estimate.item() == pytest.approx(measured, rel=1e-6)
    estimate.backward()
    first = model.spikebert.layers[0].attention.query.linear.weight  # its q spikes are counted
    assert first.grad is not None and first.grad.abs().sum() > 0


def _train(weights, steps: int, data_dir, tokenizer):
    """A tiny spike-input student trained ``steps`` SGD steps on the first SST-2 sentences with
    ``weights``; returns its estimated energy ratio on dev sentences it never saw (eval mode)."""
    from spikebert.analysis.energy import energy_ratio_estimate
    from spikebert.data.tasks import load_data
    from spikebert.distill.losses import Distiller
    from spikebert.neurons.recording import RateMeter

    train = load_data("sst2", "train", data_dir).examples[:64]
    dev = load_data("sst2", "dev", data_dir).examples[:32]
    model = tiny_snn(input_encoding="spike", num_hidden_layers=1, threshold=1.0).train()
    distiller = Distiller(model, weights)
    opt = torch.optim.Adam(distiller.parameters(), lr=3e-3)
    for step in range(steps):
        chunk = train[(step * 16) % 64:(step * 16) % 64 + 16]
        b = tokenizer([e.text for e in chunk], padding=True, return_tensors="pt")
        loss, terms = distiller(b["input_ids"], b["attention_mask"], torch.tensor([e.label for e in chunk]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    b = tokenizer([e.text for e in dev], padding=True, return_tensors="pt")
    with torch.no_grad(), model.listen(RateMeter()) as meter:
        model(b["input_ids"], b["attention_mask"])
    return energy_ratio_estimate(model, b["attention_mask"], meter).item(), terms


def test_the_energy_penalty_lowers_the_energy(data_dir, tokenizer):
    """The same seeded training with and without the penalty: the penalised student spends less
    energy on held-out sentences, and its loss logs the term it adds."""
    from spikebert.distill.config import LossWeights

    plain, plain_terms = _train(LossWeights(ce=1.0, kl=0.0, rep=0.0, emb=0.0), 12, data_dir, tokenizer)
    penalised, terms = _train(LossWeights(ce=1.0, kl=0.0, rep=0.0, emb=0.0, energy=5.0), 12, data_dir, tokenizer)
    assert set(plain_terms) == {"ce"} and set(terms) == {"ce", "energy"}
    assert penalised < 0.8 * plain, (penalised, plain)


def test_both_penalties_read_one_meter(tokenizer):
    """With the energy penalty the firing-rate term comes from the same listening: it is the
    model's own ``spike_rate``."""
    from spikebert.distill.config import LossWeights
    from spikebert.distill.losses import Distiller

    model = tiny_snn(input_encoding="spike")
    b = tokenizer(TEXTS, padding=True, return_tensors="pt")
    weights = LossWeights(ce=1.0, kl=0.0, rep=0.0, emb=0.0, spikes=0.5, energy=0.5)
    loss, terms = Distiller(model, weights)(b["input_ids"], b["attention_mask"], torch.tensor([1, 0, 1]))
    assert set(terms) == {"ce", "spikes", "energy"}
    rate = model(b["input_ids"], b["attention_mask"], return_spike_rate=True).spike_rate
    assert terms["spikes"].item() == pytest.approx(rate.item())
    assert loss.item() == pytest.approx(terms["ce"].item() + 0.5 * (terms["spikes"].item() + terms["energy"].item()))
