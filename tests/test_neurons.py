"""Spiking parts that plug in: the neuron registry, the declared neuron groups and their listeners,
the differentiable firing rate, the model's output type."""

from __future__ import annotations

import pytest
import torch

from conftest import padded_batch as batch, small_student

from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification, SpikeBertModelOutput
from spikebert.neurons import IF, LIF, NEURONS, Neuron, get_neuron, register_neuron

GROUPS = ["q", "k", "v", "attn", "out", "mlp1", "mlp2"]


def small(**kw):
    return small_student(**{"threshold": 0.3, **kw})



def test_neurons_come_from_the_registry_by_name():
    assert get_neuron("lif") is LIF and get_neuron("if") is IF
    with pytest.raises(ValueError, match="unknown neuron 'izhikevich'.*lif"):
        get_neuron("izhikevich")
    with pytest.raises(ValueError, match="unknown neuron"):
        SpikeBertConfig(neuron="izhikevich")
    model = small(neuron="if")
    groups = model.neuron_groups()
    assert all(type(m) is IF for m in groups.values())
    assert groups["layer0.attn"].threshold == pytest.approx(0.15)  # the attention neurons fire at θ/2
    ids, mask = batch()
    out = model(ids, mask, labels=torch.tensor([0, 1, 2]))
    out.loss.backward()
    assert model.spikebert.layers[0].attention.query.linear.weight.grad.abs().sum() > 0


def test_integrate_and_fire_by_hand():
    """IF: h = v + x; a spike at h >= θ; hard reset. 0.6 a step at θ = 1: 0.6, 1.2 (spike, v = 0), 0.6."""
    x = torch.full((3, 1), 0.6)
    assert IF(threshold=1.0)(x).flatten().tolist() == [0.0, 1.0, 0.0]
    # LIF (τ = 2): h = v + (x - v)/2 from the same input: 0.3, 0.45, 0.525, a spike at θ = 0.5
    assert LIF(tau=2.0, threshold=0.5)(x).flatten().tolist() == [0.0, 0.0, 1.0]


def test_a_new_neuron_is_one_class_and_a_name(monkeypatch):
    """A neuron that fires wherever its input is positive, registered here: the model builds with it
    and the LIF's fused path stays the default."""
    monkeypatch.setitem(NEURONS, "step", None)

    @register_neuron("step")
    class Step(Neuron):
        def charge(self, v, x):
            return x + self.threshold  # fire() then tests x >= 0

    model = small(neuron="step").eval()
    assert all(type(m) is Step for m in model.neuron_groups().values())
    ids, mask = batch()
    with model.record_spikes() as rec:
        model(ids, mask)
    assert set(rec.rates()) == set(model.neuron_groups())
    assert type(small().neuron_groups()["layer1.mlp2"]) is LIF


def test_the_lif_fast_path_is_the_base_loop():
    torch.manual_seed(0)
    lif = LIF(tau=2.0, threshold=1.0)
    x = torch.randn(5, 3, 7) * 2
    assert torch.equal(lif.multi_step(x), Neuron.forward_autograd(lif, x))


@pytest.mark.parametrize("encoding", ["real", "spike", "neuron"])
def test_the_model_declares_its_neuron_groups_in_order(encoding):
    model = small(input_encoding=encoding)
    names = list(model.neuron_groups())
    expected = [f"layer{i}.{g}" for i in range(2) for g in GROUPS]
    assert names == (expected if encoding == "real" else ["embed"] + expected)
    assert all(m.name == name for name, m in model.neuron_groups().items())
    assert list(model.spikebert.neuron_groups()) == names


@pytest.mark.parametrize("encoding", ["real", "spike", "neuron"])
def test_the_recorder_and_listeners_read_the_declared_groups(encoding):
    model = small(input_encoding=encoding).eval()
    ids, mask = batch()
    heard = []
    with model.record_spikes() as rec, model.listen(lambda name, s, m: heard.append(name)):
        model(ids, mask)
    assert heard == list(model.neuron_groups())  # every group once, in forward order
    assert list(rec.rates()) == list(model.neuron_groups())
    assert all(not m.listeners for m in model.neuron_groups().values())  # detached afterwards


@pytest.mark.parametrize("encoding", ["real", "spike", "neuron"])
def test_spike_rate_is_the_mean_group_rate_and_differentiable(encoding):
    model = small(input_encoding=encoding)
    ids, mask = batch()
    with model.record_spikes() as rec:
        out = model(ids, mask, return_spike_rate=True)
    rates = rec.rates()
    assert out.spike_rate.shape == () and out.spike_rate.requires_grad
    assert out.spike_rate.item() == pytest.approx(sum(rates.values()) / len(rates), abs=1e-6)
    out.spike_rate.backward()
    assert model.spikebert.embeddings.weight.grad.abs().sum() > 0  # through the surrogate, to the input
    assert model.spikebert.layers[0].mlp.fc1.linear.weight.grad.abs().sum() > 0
    assert model(ids, mask).spike_rate is None  # only when asked
    model.config.return_spike_rate = True
    assert model(ids, mask).spike_rate is not None  # or when the config asks


def test_spike_rate_gradients_are_the_same_when_blocks_recompute():
    """The rate is summed inside blocks that torch.utils.checkpoint recomputes in backward."""
    ids, mask = batch()
    grads = []
    for limit in (-1, 0):  # never, always
        model = small(input_encoding="spike", checkpoint_tokens=limit).train()
        out = model(ids, mask, labels=torch.tensor([0, 1, 2]), return_spike_rate=True)
        (out.loss + out.spike_rate).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_energy_estimate_gradients_are_the_same_when_blocks_recompute():
    """The energy penalty's per-sentence counts are summed inside recomputed blocks too."""
    from spikebert.analysis.energy import energy_ratio_estimate
    from spikebert.neurons.recording import RateMeter

    ids, mask = batch()
    grads, values = [], []
    for limit in (-1, 0):  # never, always
        model = small(input_encoding="spike", checkpoint_tokens=limit).train()
        with model.listen(RateMeter()) as meter:
            out = model(ids, mask, labels=torch.tensor([0, 1, 2]))
        estimate = energy_ratio_estimate(model, mask, meter)
        (out.loss + estimate).backward()
        values.append(estimate.item())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert values[0] == pytest.approx(values[1]) and values[0] > 0
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_the_encoder_returns_a_model_output_that_still_unpacks_like_a_tuple():
    model = small().eval()
    ids, mask = batch()
    out = model.spikebert(ids, mask)
    assert isinstance(out, SpikeBertModelOutput)
    assert out.last_hidden_state.shape == (4, 3, 12, 32)
    assert len(out.layer_means) == 2 and out.layer_means[0].shape == (3, 12, 32)
    feats, layer_means = out  # the (features, layer means) tuple it replaces
    assert feats is out.last_hidden_state and layer_means is out.layer_means
    assert out[1] is out.layer_means and out["layer_means"] is out.layer_means
    assert list(out.keys()) == ["last_hidden_state", "layer_means"]
    assert len(model.spikebert(ids, mask, return_spike_rate=True).to_tuple()) == 3
    cls = model(ids, mask)
    assert torch.equal(torch.stack(cls.hidden_states), torch.stack(out.layer_means))
