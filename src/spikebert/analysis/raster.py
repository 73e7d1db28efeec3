"""Spike rasters: every spike of one text, per neuron group, as pictures to look at.

``spikebert inspect --model DIR TEXT --output OUT`` runs a SpikeBERT model on one text and saves

- ``OUT/layer{i}.png``: one panel per neuron group of the block (q, k, v, attn, out, mlp1, mlp2),
  and ``OUT/embed.png`` for the input group of a model with spike input; rows are neurons (the
  first ``neurons`` of the group), columns are tokens × time steps (each token's T steps side by
  side, tokens separated by thin lines), a black pixel is a spike (with spikes of more than one
  bit, the darker the higher its level |s|: grey to black for 1..D with the ``int`` neuron;
  either sign of a ``bispike`` spike is level 1); each panel's title gives the group's firing
  rate, and with levels above 1 its mean level per neuron and step and its non-zero share;
- ``OUT/spikes.npz``: the raw spike levels of every group as ``uint8 [T, L, D]`` (all neurons),
  the tokens and the text.

The groups and their order are the model's own (``model.neuron_groups()``); spikes are captured
by listening to them (``model.listen``), as the recorder and the energy count do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikebert.data.batching import MAX_LENGTH
from spikebert.errors import SpikeBertError
from spikebert.folders import is_spikebert


@torch.no_grad()
def capture_spikes(model, tokenizer, text: str, max_length: int = MAX_LENGTH):
    """The tokens of ``text`` and every neuron group's spike levels on it: ``{name: uint8 [T, L, D]}``."""
    if not is_spikebert(model):
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
    with model.listen(keep):
        model(input_ids=ids, attention_mask=mask)
    ordered = {name: spikes[name] for name in model.neuron_groups() if name in spikes}
    return tokenizer.convert_ids_to_tokens(ids[0].tolist()), ordered


def _rates_text(s: np.ndarray) -> str:
    """A group's firing rate, and with levels above 1 its mean level and share of non-zero outputs."""
    rate, nonzero = float(s.mean()), float((s > 0).mean())
    if s.max() <= 1:
        return f"firing rate {rate:.3f}"
    return f"mean level {rate:.3f}, non-zero {nonzero:.3f} (levels up to {int(s.max())})"


def panels(names) -> dict[str, list[str]]:
    """Group names by figure, in their order: ``layer0.q`` goes to ``layer0``, ``embed`` to ``embed``."""
    figures: dict[str, list[str]] = {}
    for name in names:
        figures.setdefault(name.partition(".")[0], []).append(name)
    return figures


def save_rasters(tokens: list[str], spikes: dict, output, text: str = "", neurons: int = 128) -> list[Path]:
    """One PNG per figure (see the module docstring) and ``spikes.npz``; returns the paths written.
    ``spikes`` is ordered as the model declares its groups."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "spikes.npz", tokens=np.array(tokens), text=np.array(text),
                        **{name: s for name, s in spikes.items()})
    paths = [out / "spikes.npz"]
    for figure, names in panels(spikes).items():
        fig, axes = plt.subplots(len(names), 1, figsize=(max(6.0, 0.35 * len(tokens) + 2), 2.2 * len(names)),
                                 squeeze=False)
        for ax, name in zip(axes[:, 0], names):
            s = spikes[name]  # [T, L, D]
            T, L, D = s.shape
            shown = D if neurons <= 0 else min(D, neurons)
            img = s[:, :, :shown].transpose(2, 1, 0).reshape(shown, L * T)  # neuron × (token, step)
            ax.imshow(img, aspect="auto", cmap="gray_r", interpolation="nearest", vmin=0, vmax=max(1, int(s.max())))
            for j in range(1, L):
                ax.axvline(j * T - 0.5, color="tab:blue", linewidth=0.4, alpha=0.5)
            ax.set_xticks([j * T + (T - 1) / 2 for j in range(L)])
            ax.set_xticklabels(tokens, rotation=90, fontsize=7)
            ax.set_ylabel("neuron")
            ax.set_title(f"{name}: {shown} of {D} neurons × {L} tokens × T={T}, {_rates_text(s)}", fontsize=9)
        fig.tight_layout()
        path = out / f"{figure}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def inspect_model(model, tokenizer, text: str, output, neurons: int = 128, max_length: int = MAX_LENGTH) -> dict:
    """Capture a SpikeBERT model's spikes on ``text`` and save the rasters into ``output``."""
    tokens, spikes = capture_spikes(model, tokenizer, text, max_length)
    paths = save_rasters(tokens, spikes, output, text=text, neurons=neurons)
    rates = {name: float(s.mean()) for name, s in spikes.items()}
    nonzero = {name: float((s > 0).mean()) for name, s in spikes.items()}
    return {"tokens": tokens, "firing_rates": rates, "nonzero_shares": nonzero, "files": [str(p) for p in paths]}
