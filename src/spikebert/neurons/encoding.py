"""Input encodings: how the token embedding ``[B, L, D]`` enters the spiking blocks as ``[T, B, L, D]``.

- ``real``: the embedding itself, the same at every step. The residual stream then carries a
  real-valued part, so every block's q, k, v and MLP fc1 multiply it (MACs in the energy count).
- ``spike``: the reference's ``x = self.atan(x)``: a Heaviside step of the embedding (a spike
  where the embedding is >= 0) with the surrogate gradient of the model's ``surrogate`` in
  backward, the same spikes at every step. It is a neuron group of its own, ``embed``, so its
  spikes are recorded, drawn and counted like any other group's; the residual stream is then an
  integer count of spikes and every synapse downstream accumulates.
- ``neuron``: the embedding, layer-normalised (a learned scale and shift per channel), as a
  constant input current into a group ``embed`` of the model's own neuron (``config.neuron``, LIF
  by default) for T steps: binary spikes that vary over time, a channel firing sooner and more
  often the stronger its current (channels below threshold stay silent). Downstream it is spike
  input exactly as ``spike`` is; it is a function of the token (and of its position, with
  position embeddings), so it too is a table read in the energy count.

A new encoding is a module with ``from_config(config)``, ``forward(x, mask, time_steps)`` and
``neuron_groups()`` (``{}``, or its own group when it emits spikes: a :class:`SpikeSource` named
:data:`INPUT_GROUP`), registered with ``@register_encoding("name")``; ``SpikeBertConfig(
input_encoding="name")`` then builds the model with it, and the energy count reads its spikes.
"""

from __future__ import annotations

import torch
from torch import nn

from spikebert.neurons.base import SpikeSource, get_neuron
from spikebert.neurons.surrogate import Heaviside, get_surrogate

INPUT_GROUP = "embed"  # the neuron group of a spiking input encoding

ENCODINGS: dict[str, type[nn.Module]] = {}


def register_encoding(name: str):
    """Class decorator: make an encoding available as ``SpikeBertConfig(input_encoding=name)``."""

    def add(cls):
        ENCODINGS[name] = cls
        return cls

    return add


def get_encoding(name: str) -> type[nn.Module]:
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ValueError(f"input_encoding must be one of {', '.join(ENCODINGS)} (got {name!r})") from None


@register_encoding("real")
class RealInput(nn.Module):
    """The real-valued embedding, repeated over the T steps; no neuron group."""

    @classmethod
    def from_config(cls, config) -> "RealInput":
        return cls()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, time_steps: int) -> torch.Tensor:
        return x.unsqueeze(0).repeat(time_steps, 1, 1, 1)

    def neuron_groups(self) -> dict[str, SpikeSource]:
        return {}


@register_encoding("spike")
class HeavisideInput(SpikeSource):
    """``H(x)`` (spike where x >= 0, surrogate gradient backward), the same spikes at every step."""

    def __init__(self, surrogate: str, surrogate_alpha: float | None = None):
        super().__init__(INPUT_GROUP)
        self.surrogate = get_surrogate(surrogate)
        self.alpha = float(self.surrogate.alpha if surrogate_alpha is None else surrogate_alpha)

    @classmethod
    def from_config(cls, config) -> "HeavisideInput":
        return cls(config.surrogate, config.surrogate_alpha)

    def extra_repr(self) -> str:
        return f"surrogate={self.surrogate.name}, alpha={self.alpha}"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, time_steps: int) -> torch.Tensor:
        spikes = Heaviside.apply(x, self.surrogate, self.alpha)
        return self.emit(spikes.unsqueeze(0).repeat(time_steps, 1, 1, 1), mask)


@register_encoding("neuron")
class NeuronInput(nn.Module):
    """``LayerNorm(x)`` as a constant current into a neuron group ``embed`` of the model's neuron
    kind for T steps (its threshold, tau and surrogate are the model's): spikes vary over time."""

    def __init__(self, norm: nn.LayerNorm, neuron: SpikeSource):
        super().__init__()
        self.norm, self.neuron = norm, neuron

    @classmethod
    def from_config(cls, config) -> "NeuronInput":
        return cls(nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps),
                   get_neuron(config.neuron).from_config(config, INPUT_GROUP))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, time_steps: int) -> torch.Tensor:
        current = self.norm(x).unsqueeze(0).expand(time_steps, -1, -1, -1).contiguous()
        return self.neuron(current, mask)

    def neuron_groups(self) -> dict[str, SpikeSource]:
        return self.neuron.neuron_groups()
