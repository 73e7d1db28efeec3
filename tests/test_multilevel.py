"""Spikes beyond one bit: the int neuron (counts 0..D a step) and the bispike neuron (-1, 0, +1
times a learned amplitude), their dynamics by hand, their fused paths against the autograd
reference (the compiled kernels: tests/test_model.py), the model with each, saving and loading, stage 2 switching neuron, the shape flags."""

from __future__ import annotations

import pytest
import torch

from conftest import padded_batch as batch, small_student

from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
from spikebert.distill.config import StudentShape
from spikebert.errors import SpikeBertError
from spikebert.neurons import BiSpikeLIF, IntLIF, Neuron, get_neuron

KINDS = [("int", {"spike_levels": 3}), ("bispike", {})]


def small(neuron, **kw):
    return small_student(**{"threshold": 0.3, "neuron": neuron, **dict(KINDS).get(neuron, {}), **kw})


def test_the_int_neuron_by_hand():
    """τ = 2, θ = 1, D = 3; input 8, 0, 4: h = 4 → 3 spikes (at most D), v = 4 - 3 = 1; h = 0.5 → 0;
    h = 0.5 + (4 - 0.5)/2 = 2.25 → 2, v = 0.25. Reset by subtraction keeps what is over."""
    x = torch.tensor([8.0, 0.0, 4.0])[:, None]
    assert get_neuron("int") is IntLIF
    assert IntLIF(tau=2.0, spike_levels=3, threshold=1.0)(x).flatten().tolist() == [3.0, 0.0, 2.0]
    # D = 1 is the LIF with reset by subtraction: input 3, 0: h = 1.5 → 1, v = 0.5; h = 0.25 → 0
    assert IntLIF(tau=2.0, spike_levels=1, threshold=1.0)(torch.tensor([[3.0], [0.0]])).flatten().tolist() == [1, 0]
    with pytest.raises(ValueError, match="spike_levels"):
        IntLIF(spike_levels=0)


def test_the_bispike_neuron_by_hand():
    """τ = 2, θ = 1; input 3, -3, -1.5, 0.5: h = 1.5 → +1 (v = 0); -1.5 → -1 (v = 0); -0.75 → 0;
    -0.75 + (0.5 + 0.75)/2 = -0.125 → 0. Out: the amplitude times the spike; listeners hear |s|."""
    neuron = BiSpikeLIF(tau=2.0, threshold=1.0)
    assert neuron.amplitude.item() == 1.0 and neuron.amplitude.requires_grad
    with torch.no_grad():
        neuron.amplitude.fill_(0.5)
    heard = []
    neuron.listeners.append(lambda name, levels, mask: heard.append(levels))
    x = torch.tensor([3.0, -3.0, -1.5, 0.5])[:, None]
    assert neuron(x).flatten().tolist() == [0.5, -0.5, 0.0, 0.0]
    assert heard[0].flatten().tolist() == [1.0, 1.0, 0.0, 0.0]
    assert neuron(x, scaled=False).flatten().tolist() == [1.0, -1.0, 0.0, 0.0]


@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("kind", ["int", "bispike"])
def test_the_fused_path_is_the_autograd_loop(kind, detach_reset):
    """Spikes, levels and the gradients of both equal the plain charge → fire → reset loop's."""
    torch.manual_seed(0)
    neuron = get_neuron(kind)(threshold=0.7, detach_reset=detach_reset, **dict(KINDS)[kind])
    x = (torch.randn(5, 3, 7) * 3).requires_grad_()
    g_s, g_l = torch.randn(5, 3, 7), torch.randn(5, 3, 7)
    s, levels = neuron.spikes_and_levels(x)
    ((s * g_s).sum() + (levels * g_l).sum()).backward()
    fused = x.grad.clone()
    x.grad = None
    s_ref, levels_ref = Neuron.forward_autograd(neuron, x, levels=True)
    ((s_ref * g_s).sum() + (levels_ref * g_l).sum()).backward()
    assert torch.equal(s, s_ref) and torch.equal(levels, levels_ref)
    assert torch.allclose(fused, x.grad, atol=1e-6) and fused.abs().sum() > 0
    assert levels.min() >= 0 and (levels > 1).any() == (kind == "int")
    assert (s < 0).any() == (kind == "bispike")


@pytest.mark.parametrize("encoding", ["real", "spike", "neuron"])
@pytest.mark.parametrize("kind", ["int", "bispike"])
def test_the_model_learns_with_each_neuron_and_encoding(kind, encoding):
    model = small(kind, input_encoding=encoding)
    groups = model.neuron_groups()
    assert all(type(m) is get_neuron(kind) for name, m in groups.items() if name != "embed" or encoding == "neuron")
    ids, mask = batch()
    with model.record_spikes() as rec:
        out = model(ids, mask, labels=torch.tensor([0, 1, 2]), return_spike_rate=True)
    (out.loss + out.spike_rate).backward()
    assert model.spikebert.layers[0].attention.query.linear.weight.grad.abs().sum() > 0
    rates, nonzero = rec.rates(), rec.nonzero_shares()
    assert set(rates) == set(nonzero) == set(groups)
    if kind == "int":  # a rate is a mean level: above the non-zero share where counts exceed 1
        assert any(rates[g] > nonzero[g] for g in groups) and all(rates[g] >= nonzero[g] for g in groups)
    else:  # either sign is level 1; every amplitude learns (q, k, v's through the attention scale)
        assert all(rates[g] == pytest.approx(nonzero[g]) for g in groups)
        amplitudes = {n: p for n, p in model.named_parameters() if n.endswith(".amplitude")}
        assert len(amplitudes) == len([g for g in groups if g != "embed" or encoding == "neuron"])
        assert all(p.grad is not None for p in amplitudes.values())
        assert model.spikebert.layers[0].attention.key.neuron.amplitude.grad.abs() > 0


def test_a_sentence_does_not_depend_on_its_batch_with_amplitudes():
    """The attention's association changes with the padded length; the amplitudes are applied after
    the integer products, so a sentence's logits are the same alone and in a longer batch (up to the
    matmul kernels' rounding, which on some CPUs depends on the batch's shape: 1e-8 here, where
    padding that leaked in would move them by orders of magnitude more)."""
    model = small("bispike").eval()
    with torch.no_grad():
        for i, p in enumerate(p for n, p in model.named_parameters() if n.endswith(".amplitude")):
            p.fill_(0.37 + 0.11 * i)
        ids, mask = batch(b=3, length=20)
        together = model(ids, mask).logits
        for i in range(3):
            n = int(mask[i].sum())
            alone = model(ids[i:i + 1, :n], mask[i:i + 1, :n]).logits
            torch.testing.assert_close(alone[0], together[i], rtol=0, atol=1e-6, msg=f"sentence {i}")


@pytest.mark.parametrize("kind", ["int", "bispike"])
def test_save_and_load_keep_the_neuron(kind, tmp_path):
    model = small(kind).eval()
    with torch.no_grad():
        for p in (p for n, p in model.named_parameters() if n.endswith(".amplitude")):
            p.fill_(0.8)
    model.save_pretrained(tmp_path)
    loaded = SpikeBertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.neuron == kind and loaded.config.spike_levels == (3 if kind == "int" else None)
    ids, mask = batch()
    assert torch.equal(model(ids, mask).logits, loaded(ids, mask).logits)


def test_the_config_resolves_and_checks_the_levels():
    assert SpikeBertConfig(neuron="int").spike_levels == 4  # the default, saved with the model
    assert SpikeBertConfig().spike_levels is None
    with pytest.raises(ValueError, match="spike_levels applies to a neuron with levels"):
        SpikeBertConfig(neuron="bispike", spike_levels=2)
    with pytest.raises(ValueError, match="whole number >= 1"):
        SpikeBertConfig(neuron="int", spike_levels=0)


def test_the_shape_names_the_neuron_in_the_folder_tag():
    cpu = StudentShape(time_steps=4)
    assert StudentShape(time_steps=4, neuron="int").tag(cpu) == "-int4"  # the default levels, named
    assert StudentShape(time_steps=4, neuron="int", spike_levels=2).tag(cpu) == "-int2"
    assert StudentShape(time_steps=4, neuron="bispike", input_encoding="spike").tag(cpu) == "-spike-bispike"
    assert StudentShape(time_steps=4, neuron="lif").tag(cpu) == ""
    assert StudentShape(neuron="int").config_kwargs() == {"neuron": "int", "spike_levels": 4}
    for bad, needle in (({"neuron": "izhikevich"}, "--neuron"), ({"spike_levels": 0}, "--spike-levels"),
                        ({"neuron": "bispike", "spike_levels": 2}, "--spike-levels")):
        with pytest.raises(SpikeBertError, match=needle):
            StudentShape(**bad)


def _stage1(tmp_path, neuron="lif", **kw):
    folder = tmp_path / f"stage1-{neuron}"
    small_student(num_labels=2, neuron=neuron, **kw).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["int", "bispike"])
def test_stage2_may_switch_a_lif_student_to_another_neuron(tmp_path, kind):
    """The neuron owns no weight but bispike's amplitudes: from a lif stage-1 student they start at
    1.0, every other tensor loaded strictly."""
    from spikebert.distill.stages import load_student_init

    folder = _stage1(tmp_path)
    shape = StudentShape(neuron=kind, **({"spike_levels": 2} if kind == "int" else {}))
    student = load_student_init(str(folder), ("neg", "pos"), shape)
    assert student.config.neuron == kind and student.config.spike_levels == (2 if kind == "int" else None)
    lif = SpikeBertForSequenceClassification.from_pretrained(folder)
    own = student.state_dict()
    for name, tensor in lif.state_dict().items():
        if not name.startswith("classifier."):
            assert torch.equal(own[name], tensor), name
    assert all(own[n].item() == 1.0 for n in own if n.endswith(".amplitude"))
    assert any(n.endswith(".amplitude") for n in own) == (kind == "bispike")


def test_stage2_switches_levels_and_back_to_lif_but_not_away_from_bispike(tmp_path):
    from spikebert.distill.stages import load_student_init

    int_folder = _stage1(tmp_path, "int", spike_levels=4)
    student = load_student_init(str(int_folder), ("neg", "pos"), StudentShape(spike_levels=2))
    assert (student.config.neuron, student.config.spike_levels) == ("int", 2)
    student = load_student_init(str(int_folder), ("neg", "pos"), StudentShape(neuron="lif"))
    assert (student.config.neuron, student.config.spike_levels) == ("lif", None)
    with pytest.raises(SpikeBertError, match="spike_levels applies"):
        load_student_init(str(_stage1(tmp_path)), ("neg", "pos"), StudentShape(spike_levels=2))
    bispike = _stage1(tmp_path, "bispike")
    with pytest.raises(SpikeBertError) as info:
        load_student_init(str(bispike), ("neg", "pos"), StudentShape(neuron="lif"))
    assert "\n" not in str(info.value) and "neuron=bispike" in str(info.value) and str(bispike) in str(info.value)


def test_rasters_show_levels(tokenizer, tmp_path):
    from spikebert.analysis.raster import inspect_model

    model = small_student(vocab_size=len(tokenizer), threshold=0.3, neuron="int", spike_levels=3).eval()
    r = inspect_model(model, tokenizer, "a gripping , funny film", tmp_path, neurons=16)
    import numpy as np

    spikes = np.load(tmp_path / "spikes.npz")
    assert max(int(spikes[g].max()) for g in r["firing_rates"]) == 3
    assert all(r["firing_rates"][g] >= r["nonzero_shares"][g] for g in r["firing_rates"])
    assert any(r["firing_rates"][g] > r["nonzero_shares"][g] for g in r["firing_rates"])
