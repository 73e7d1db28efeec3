"""The spiking student: spikes, gradients, padding, persistence, configuration."""

import json

import pytest
import torch

from conftest import padded_batch as batch, small_student as small

from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
from spikebert.neurons.lif import LIF


def test_spikes_are_exactly_zero_or_one():
    model = small()
    outs = []
    for m in model.modules():
        if isinstance(m, LIF):
            m.register_forward_hook(lambda mod, inp, out: outs.append(out))
    ids, mask = batch()
    model(ids, mask)
    assert len(outs) == 2 * 7
    values = torch.unique(torch.cat([o.flatten() for o in outs]))
    assert set(values.tolist()) <= {0.0, 1.0}
    assert 1.0 in values.tolist()  # the network does fire


def test_every_parameter_gets_a_gradient_through_the_surrogate():
    model = small(threshold=0.3)
    ids, mask = batch()
    out = model(ids, mask, labels=torch.tensor([0, 1, 2]))
    feats = model.distill_features(out.hidden_states)
    (out.loss + sum(f.square().mean() for f in feats)).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    # the embedding rows of unused ids get zero gradient by nature; every other tensor must learn
    assert dead == [], dead


def test_fused_lif_matches_autograd_loop():
    torch.manual_seed(0)
    for detach in (True, False):
        lif = LIF(tau=2.0, threshold=1.0, detach_reset=detach)
        x1 = (torch.randn(4, 2, 5, 6) * 2).requires_grad_()
        x2 = x1.detach().clone().requires_grad_()
        g = torch.randn(4, 2, 5, 6)
        (lif(x1) * g).sum().backward()
        (lif.forward_autograd(x2) * g).sum().backward()
        assert torch.equal(lif(x1.detach()), lif.forward_autograd(x2.detach()))
        assert torch.allclose(x1.grad, x2.grad, atol=1e-6)


@pytest.mark.parametrize("encoding", ["real", "spike", "neuron"])
@pytest.mark.parametrize("positions", [False, True])
def test_logits_do_not_depend_on_padding_or_batch(positions, encoding):
    model = small(position_embeddings=positions, input_encoding=encoding).eval()
    ids, mask = batch(b=3, length=16)
    together = model(ids, mask).logits
    for i in range(3):
        n = int(mask[i].sum())
        alone = model(ids[i:i + 1, :n], mask[i:i + 1, :n]).logits
        assert torch.allclose(alone[0], together[i], atol=1e-5), (i, alone, together[i])


def test_without_positions_the_student_does_not_see_word_order():
    """No position embeddings: every layer is per token or a sum over tokens, so a sentence and its
    shuffle get the same logits (a bag of words). Positions make the order count."""
    ids = torch.randint(1, 200, (1, 12), generator=torch.Generator().manual_seed(3))
    shuffled = ids[:, torch.randperm(12, generator=torch.Generator().manual_seed(4))]
    for positions in (False, True):
        model = small(position_embeddings=positions, threshold=0.1).eval()
        a, b = model(ids).logits, model(shuffled).logits
        assert torch.allclose(a, b, atol=1e-5) is (not positions), (positions, a, b)


def test_student_starts_from_the_teachers_word_and_position_embeddings():
    from transformers import AutoModel

    from spikebert.distill.losses import student_config, teacher_position_embeddings, teacher_word_embeddings
    from spikebert.teachers.loading import resolve_teacher

    teacher = AutoModel.from_pretrained(resolve_teacher(None))
    words, positions = teacher_word_embeddings(teacher), teacher_position_embeddings(teacher)
    student = SpikeBertForSequenceClassification(student_config(teacher.config, num_hidden_layers=1,
                                                                position_embeddings=True, max_position_embeddings=128))
    assert student.init_embeddings_from(words, positions)
    assert torch.equal(student.spikebert.embeddings.weight, words)
    assert torch.equal(student.spikebert.position_embeddings.weight, positions[:128])
    narrow = SpikeBertForSequenceClassification(student_config(teacher.config, num_hidden_layers=1, hidden_size=64,
                                                               position_embeddings=True))
    before = narrow.spikebert.position_embeddings.weight.clone()
    assert not narrow.init_embeddings_from(words, positions)  # other widths keep their own start
    assert torch.equal(narrow.spikebert.position_embeddings.weight, before)


def test_no_state_leaks_between_calls():
    model = small().eval()
    ids, mask = batch()
    first = model(ids, mask).logits
    other_ids, other_mask = batch(seed=7)
    model(other_ids, other_mask)
    assert torch.equal(model(ids, mask).logits, first)


@pytest.mark.parametrize("encoding", ["real", "spike", "neuron"])
def test_save_load_round_trip_gives_identical_logits(tmp_path, encoding):
    from transformers import AutoModelForSequenceClassification

    model = small(time_steps=3, input_encoding=encoding, neuron="lif").eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, SpikeBertForSequenceClassification)
    assert (loaded.config.input_encoding, loaded.config.neuron) == (encoding, "lif")
    ids, mask = batch()
    assert torch.equal(loaded(ids, mask).logits, model(ids, mask).logits)


def test_one_time_step_works():
    model = small(time_steps=1)
    ids, mask = batch()
    out = model(ids, mask, labels=torch.tensor([0, 1, 2]))
    out.loss.backward()
    assert out.logits.shape == (3, 3)


@pytest.mark.parametrize("encoding", ["real", "spike", "neuron"])
def test_firing_rates_lie_in_unit_interval_and_ignore_padding(encoding):
    model = small(threshold=0.3, input_encoding=encoding).eval()
    ids, mask = batch()
    with model.record_spikes() as rec:
        model(ids, mask)
    rates = rec.rates()
    assert list(rates) == list(model.neuron_groups())
    assert len(rates) == 2 * 7 + (encoding != "real")
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    assert any(r > 0 for r in rates.values())
    # the same sentences without their padding give the same rates
    with model.record_spikes() as rec2:
        for i in range(3):
            n = int(mask[i].sum())
            model(ids[i:i + 1, :n], mask[i:i + 1, :n])
    for k, v in rates.items():
        assert abs(rec2.rates()[k] - v) < 1e-6, k
    # recording is off afterwards
    assert all(not m.listeners for m in model.neuron_groups().values())


def test_defaults_and_transformers_interface():
    cfg = SpikeBertConfig(vocab_size=100, num_labels=2)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.time_steps) == (6, 384, 4)
    assert (cfg.input_encoding, cfg.neuron, cfg.tau, cfg.threshold, cfg.surrogate) == ("real", "lif", 2.0, 1.0, "atan")
    assert cfg.return_spike_rate is False
    model = SpikeBertForSequenceClassification(SpikeBertConfig(vocab_size=100, num_labels=2, num_hidden_layers=1,
                                                               hidden_size=16, num_attention_heads=2))
    out = model(torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 2) and out.loss is None
    with pytest.raises(ValueError):
        SpikeBertConfig(hidden_size=30, num_attention_heads=4)


def test_config_of_the_wrong_shape_for_a_checkpoint_is_a_clear_error(tmp_path):
    from spikebert.errors import SpikeBertError
    from spikebert.folders import load_classifier

    model = small()
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["hidden_size"] = 64
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(SpikeBertError) as e:
        load_classifier(tmp_path)
    message = str(e.value)
    assert str(tmp_path) in message and "does not match the weights" in message and "64" in message


@pytest.mark.parametrize("kind, kw", [("lif", {}), ("int", {"spike_levels": 3}), ("bispike", {})])
def test_compiled_neuron_kernels_match_eager(monkeypatch, kind, kw):
    """The kernels chosen on CUDA (torch.compile) compute exactly what the eager loops compute;
    checked here on the CPU by forcing the compiled backend."""
    from spikebert.neurons import get_neuron

    torch.manual_seed(0)
    x = torch.randn(3, 2, 7, 16) * 2
    g = torch.randn_like(x)
    results = []
    for backend in ("eager", "compile"):
        monkeypatch.setenv("SPIKEBERT_NEURON_BACKEND", backend)
        xi = x.clone().requires_grad_()
        spikes = get_neuron(kind)(tau=2.0, threshold=1.0, **kw)(xi)
        (spikes * g).sum().backward()
        results.append((spikes.detach(), xi.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_compiled_blocks_compute_what_eager_blocks_compute(tmp_path):
    """SPIKEBERT_COMPILE=blocks (training.device.compile_blocks): each block under torch.compile
    gives the eager model's logits, spike rate and gradients, and saves the same weights."""
    from torch._dynamo.utils import counters

    from spikebert.training.device import compile_blocks

    ids, mask = batch(b=3, length=12)
    labels = torch.tensor([0, 1, 2])
    results = []
    for compiled in (False, True):
        model = small(threshold=0.3)
        if compiled:
            assert compile_blocks(model) == 2
            graphs = counters["stats"]["unique_graphs"]
        out = model(ids, mask, labels=labels, return_spike_rate=True)
        if compiled:
            assert counters["stats"]["unique_graphs"] > graphs  # it did compile
        out.loss.backward()
        results.append((out.logits.detach(), out.spike_rate.detach(),
                        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (logits, rate, grads), (c_logits, c_rate, c_grads) = results
    assert torch.allclose(logits, c_logits, atol=1e-6) and torch.allclose(rate, c_rate, atol=1e-7)
    assert 0 < rate < 1 and grads.keys() == c_grads.keys()
    for name in grads:
        assert torch.allclose(grads[name], c_grads[name], atol=1e-5), name
    model.save_pretrained(tmp_path)  # the compiled one: the same names, loadable as eager
    again = SpikeBertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.allclose(again(ids, mask).logits, model.eval()(ids, mask).logits, atol=1e-6)


def test_recomputing_activations_gives_the_same_gradients():
    """Large batches recompute each sub-layer in backward (config.checkpoint_tokens): same result."""
    ids, mask = batch(b=3, length=12)
    labels = torch.tensor([0, 1, 2])
    grads = []
    for limit in (-1, 0):  # never, always
        model = small(threshold=0.3, checkpoint_tokens=limit)
        model(ids, mask, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_a_config_saved_before_the_neuron_field_loads_with_the_lif(tmp_path):
    """Folders written before ``neuron`` and ``return_spike_rate`` existed load as they ran."""
    model = small(input_encoding="spike").eval()
    model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for key in ("neuron", "return_spike_rate"):
        cfg.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    loaded = SpikeBertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.neuron == "lif" and all(type(m) is LIF for n, m in loaded.neuron_groups().items()
                                                 if n != "embed")
    ids, mask = batch()
    assert torch.equal(loaded(ids, mask).logits, model(ids, mask).logits)


def test_every_docstring_field_of_the_config_is_a_field():
    """SpikeBertConfig documents every argument, one entry each, as BertConfig does."""
    import inspect
    import re

    params = [p for p in inspect.signature(SpikeBertConfig.__init__).parameters if p not in ("self", "kwargs")]
    documented = re.findall(r"^        (\w+) \(`", SpikeBertConfig.__doc__, flags=re.M)
    assert documented == params


@pytest.mark.parametrize("encoding", ["real", "spike"])
def test_the_weight_names_are_those_of_saved_students(encoding):
    """Students already trained and saved must load: the tensor names are fixed (neurons and
    encodings own none)."""
    model = SpikeBertForSequenceClassification(SpikeBertConfig(
        vocab_size=10, num_hidden_layers=1, hidden_size=8, num_attention_heads=2, position_embeddings=True,
        input_encoding=encoding))
    unit = [f"{p}.{t}" for p in ("linear", "norm") for t in ("weight", "bias")]
    block = [f"spikebert.layers.0.{m}.{u}" for m in ("attention.query", "attention.key", "attention.value",
                                                      "attention.output", "mlp.fc1", "mlp.fc2") for u in unit]
    assert list(model.state_dict()) == [
        "spikebert.embeddings.weight", "spikebert.position_embeddings.weight", *block,
        "spikebert.final_norm.weight", "spikebert.final_norm.bias", "classifier.weight", "classifier.bias",
        "distill_transforms.0.0.weight", "distill_transforms.0.0.bias",
        "distill_transforms.0.1.weight", "distill_transforms.0.1.bias"]
