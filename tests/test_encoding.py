"""Input encodings: the spike input of the reference (the group ``embed``), against the real one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import lif_by_hand, padded_batch as batch, small_student

from spikebert import INPUT_ENCODINGS, SpikeBertConfig, SpikeBertForSequenceClassification


def small(**kw):
    return small_student(**{"threshold": 0.3, "input_encoding": "spike", **kw})



def test_encodings_are_named():
    assert INPUT_ENCODINGS == ("real", "spike", "neuron")
    with pytest.raises(ValueError, match="input_encoding must be one of real, spike, neuron"):
        SpikeBertConfig(input_encoding="rate")


@pytest.mark.parametrize("positions", [False, True])
def test_spike_input_makes_every_block_input_an_exact_integer_count(positions):
    """Block 0 reads the input spikes (0/1); its MLP reads them plus the attention's out spikes; each
    later block reads those plus the spike outputs of the blocks before: integers, counted."""
    model = small(position_embeddings=positions).eval()
    seen = {}
    for i, block in enumerate(model.spikebert.layers):
        block.attention.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(("attn", i), args[0]))
        block.mlp.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(("mlp", i), args[0]))
    ids, mask = batch()
    with torch.no_grad():
        model(ids, mask)
        emb = model.spikebert.embed(ids)
    x0 = seen[("attn", 0)]
    assert torch.equal(x0, (emb >= 0).float().expand(4, -1, -1, -1))  # H(embedding), the same at each step
    assert set(x0.unique().tolist()) == {0.0, 1.0}
    for key, x in seen.items():
        assert torch.equal(x, x.round()) and x.min() >= 0, key
    assert seen[("mlp", 1)].max() > 1  # counts, not only spikes
    assert seen[("mlp", 1)].max() <= 4  # at most one spike from each of input, out0, mlp2_0, out1


def test_real_input_blocks_read_the_embedding():
    model = small(input_encoding="real").eval()
    seen = []
    model.spikebert.layers[0].attention.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    ids, mask = batch()
    with torch.no_grad():
        model(ids, mask)
        assert torch.equal(seen[0], model.spikebert.embed(ids).expand(4, -1, -1, -1))


@pytest.mark.parametrize("encoding", ["spike", "neuron"])
def test_the_surrogate_gradient_reaches_the_embedding(encoding):
    model = small(input_encoding=encoding)
    ids, mask = batch()
    model(ids, mask, labels=torch.tensor([0, 1, 2])).loss.backward()
    grad = model.spikebert.embeddings.weight.grad
    used = torch.unique(ids[mask.bool()])
    assert (grad[used].abs().sum(1) > 0).all()
    if encoding == "neuron":  # and the input's own scale and shift
        norm = model.spikebert.input_encoder.norm
        assert norm.weight.grad.abs().sum() > 0 and norm.bias.grad.abs().sum() > 0


@pytest.mark.parametrize("positions", [False, True])
def test_neuron_input_is_a_lif_of_the_normalised_embedding_varying_over_time(positions):
    """``neuron``: block 0 reads the spikes of a LIF driven by LayerNorm(embedding) (exact 0/1,
    not the same at every step); every later input is an integer count, as with ``spike``."""
    model = small(input_encoding="neuron", position_embeddings=positions).eval()
    with torch.no_grad():  # a learned scale and shift, not the identity
        model.spikebert.input_encoder.norm.weight.uniform_(0.5, 2.0)
        model.spikebert.input_encoder.norm.bias.uniform_(-0.5, 0.5)
    seen = {}
    for i, block in enumerate(model.spikebert.layers):
        block.attention.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(("attn", i), args[0]))
        block.mlp.register_forward_pre_hook(lambda m, args, i=i: seen.__setitem__(("mlp", i), args[0]))
    ids, mask = batch()
    with torch.no_grad(), model.record_spikes() as rec:
        model(ids, mask)
        current = model.spikebert.input_encoder.norm(model.spikebert.embed(ids))
    cfg = model.config
    x0 = seen[("attn", 0)]
    assert torch.equal(x0, lif_by_hand(current, cfg.time_steps, cfg.tau, cfg.threshold))
    assert set(x0.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(x0[0], x0[-1])  # the input varies over time
    for key, x in seen.items():
        assert torch.equal(x, x.round()) and x.min() >= 0, key
    assert rec.spikes["embed"] == pytest.approx(float((x0 * mask[None, :, :, None]).sum()))


def test_which_encodings_own_tensors():
    """A stage-1 student of ``real`` has exactly the tensors of ``spike`` (strict loading cannot
    tell them apart; stage 2 refuses the switch by the config); ``neuron`` adds its LayerNorm."""
    real = list(small(input_encoding="real").state_dict())
    assert real == list(small(input_encoding="spike").state_dict())
    extra = set(small(input_encoding="neuron").state_dict()) - set(real)
    assert extra == {"spikebert.input_encoder.norm.weight", "spikebert.input_encoder.norm.bias"}


@pytest.mark.parametrize("positions", [False, True])
def test_padding_changes_nothing_with_spike_input(positions):
    model = small(position_embeddings=positions).eval()
    ids, mask = batch(b=3, length=16)
    with torch.no_grad(), model.record_spikes() as together:
        logits = model(ids, mask).logits
    with torch.no_grad(), model.record_spikes() as alone:
        for i in range(3):
            n = int(mask[i].sum())
            one = model(ids[i:i + 1, :n], mask[i:i + 1, :n]).logits
            assert torch.allclose(one[0], logits[i], atol=1e-5), i
    assert "embed" in together.rates()
    assert together.rates() == pytest.approx(alone.rates(), abs=1e-6)
    # the recorder's count of the input group is H(embedding) over real tokens, at every step
    emb = model.spikebert.embed(ids)
    assert together.spikes["embed"] == pytest.approx(4 * float(((emb >= 0) * mask[:, :, None]).sum()))


def test_rasters_include_the_input_group(tokenizer, tmp_path):
    from spikebert.analysis.raster import capture_spikes, inspect_model

    torch.manual_seed(0)
    model = small(vocab_size=30522, hidden_size=64, time_steps=2).eval()
    tokens, spikes = capture_spikes(model, tokenizer, "a gorgeous , witty movie .")
    assert list(spikes) == list(model.neuron_groups())  # the declared order, embed first
    assert spikes["embed"].shape == (2, len(tokens), 64)
    assert np.array_equal(spikes["embed"][0], spikes["embed"][1])  # the same spikes at each step
    result = inspect_model(model, tokenizer, "a gorgeous , witty movie .", tmp_path, neurons=16)
    assert (tmp_path / "embed.png").stat().st_size > 0 and (tmp_path / "layer1.png").stat().st_size > 0
    assert "embed" in result["firing_rates"]
    saved = np.load(tmp_path / "spikes.npz")
    assert saved["embed"].shape == (2, len(tokens), 64)
