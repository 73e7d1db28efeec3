"""Spike rasters: every spike of one text, per layer and neuron group, as pictures to look at.

``spikebert inspect --model DIR TEXT --output OUT`` runs a SpikeBERT model on one text and saves

- ``OUT/layer{i}.png``: one panel per neuron group (q, k, v, attn, out, mlp1, mlp2); rows are
  neurons (the first ``neurons`` of the group), columns are tokens × time steps (each token's T
  steps side by side, tokens separated by thin lines), a black pixel is a spike;
- ``OUT/spikes.npz``: the raw spikes of every group as ``uint8 [T, L, D]`` (all neurons), the
  tokens and the text.

Spikes are captured with forward hooks on the :class:`~spikebert.neurons.lif.LIF` modules
(:func:`lif_hooks`), so the model code is untouched; :mod:`spikebert.analysis.energy` uses the same hooks.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from spikebert.errors import SpikeBertError
from spikebert.folders import is_snn
from spikebert.neurons.lif import LIF

GROUPS = ("q", "k", "v", "attn", "out", "mlp1", "mlp2")


@contextmanager
def lif_hooks(model, fn):
    """Within the block, ``fn(name, spikes, mask)`` is called after every LIF of ``model`` runs
    (``spikes`` ``[T, B, L, D]``, ``mask`` ``[B, L]`` or None)."""

    def hook(module, args, kwargs, output):
        mask = args[1] if len(args) > 1 else kwargs.get("mask")
        fn(module.name, output, mask)

    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in model.modules() if isinstance(m, LIF)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def capture_spikes(model, tokenizer, text: str, max_length: int = 128):
    """The tokens of ``text`` and every neuron group's spikes on it: ``{name: uint8 [T, L, D]}``."""
    if not is_snn(model):
        raise SpikeBertError(f"a {model.config.model_type} model has no spiking neurons; "
                             "inspect needs a SpikeBERT model")
    if not text or not text.strip():
        raise SpikeBertError("the text is empty")
    if max_length > model.config.max_position_embeddings:
        raise SpikeBertError(f"max length {max_length} exceeds the model's "
                             f"{model.config.max_position_embeddings} positions")
    enc = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
    ids = enc["input_ids"]
    mask = torch.ones_like(ids)
    spikes: dict[str, np.ndarray] = {}

    def keep(name, s, _mask):
        spikes[name] = s[:, 0].to(torch.uint8).numpy()  # batch of one: [T, L, D]

    model.eval()
    with lif_hooks(model, keep):
        model(input_ids=ids, attention_mask=mask)
    return tokenizer.convert_ids_to_tokens(ids[0].tolist()), spikes


def _layer_names(spikes: dict) -> dict[int, list[str]]:
    layers: dict[int, list[str]] = {}
    for name in spikes:
        layer, _, group = name.partition(".")
        layers.setdefault(int(layer.removeprefix("layer")), []).append(name)
    order = {g: i for i, g in enumerate(GROUPS)}
    return {i: sorted(v, key=lambda n: order.get(n.partition(".")[2], len(order))) for i, v in sorted(layers.items())}


def save_rasters(tokens: list[str], spikes: dict, output, text: str = "", neurons: int = 128) -> list[Path]:
    """One PNG per layer (see the module docstring) and ``spikes.npz``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "spikes.npz", tokens=np.array(tokens), text=np.array(text),
                        **{name: s for name, s in spikes.items()})
    paths = [out / "spikes.npz"]
    for layer, names in _layer_names(spikes).items():
        fig, axes = plt.subplots(len(names), 1, figsize=(max(6.0, 0.35 * len(tokens) + 2), 2.2 * len(names)),
                                 squeeze=False)
        for ax, name in zip(axes[:, 0], names):
            s = spikes[name]  # [T, L, D]
            T, L, D = s.shape
            shown = D if neurons <= 0 else min(D, neurons)
            img = s[:, :, :shown].transpose(2, 1, 0).reshape(shown, L * T)  # neuron × (token, step)
            ax.imshow(img, aspect="auto", cmap="gray_r", interpolation="nearest", vmin=0, vmax=1)
            for j in range(1, L):
                ax.axvline(j * T - 0.5, color="tab:blue", linewidth=0.4, alpha=0.5)
            ax.set_xticks([j * T + (T - 1) / 2 for j in range(L)])
            ax.set_xticklabels(tokens, rotation=90, fontsize=7)
            ax.set_ylabel("neuron")
            rate = float(s.mean())
            ax.set_title(f"{name}: {shown} of {D} neurons × {L} tokens × T={T}, firing rate {rate:.3f}",
                         fontsize=9)
        fig.tight_layout()
        path = out / f"layer{layer}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def inspect_model(model, tokenizer, text: str, output, neurons: int = 128, max_length: int = 128) -> dict:
    """Capture a SpikeBERT model's spikes on ``text`` and save the rasters into ``output``."""
    tokens, spikes = capture_spikes(model, tokenizer, text, max_length)
    paths = save_rasters(tokens, spikes, output, text=text, neurons=neurons)
    rates = {name: float(s.mean()) for name, s in spikes.items()}
    return {"tokens": tokens, "firing_rates": rates, "files": [str(p) for p in paths]}
