"""What every spiking part shares: a named neuron group that tells its listeners what it emitted,
and a neuron base with SpikingJelly's three steps (charge, fire, reset), with a registry by name.

A **neuron group** (:class:`SpikeSource`) is any module whose output is spikes ``[T, B, L, ...]``;
it carries the group's name (``layer0.q``, ``embed``, ...) and calls each of its ``listeners``
with ``(name, levels, mask)`` after it fires. ``levels`` are the spikes' magnitudes |s|, whole
numbers >= 0: 0 and 1 for a binary neuron (then they are the spikes themselves), 0..D for the
``int`` neuron, 1 for either sign of the ``bispike`` neuron (whose learned amplitude is a scale
folded into the next layer, not a level); a level of k is k accumulates downstream. The model
declares its groups (``model.neuron_groups()``); the spike recorder, the firing-rate penalty, the
rasters and the energy count attach listeners to them. Nothing looks a neuron up by its class.

A **neuron** (:class:`Neuron`) is a group with a membrane: per step (SpikingJelly's ``BaseNode``)

    h[t] = charge(v[t-1], x[t])                   # the membrane after the input
    s[t] = fire(h[t]) = H(h[t] - threshold)       # a spike at h >= threshold (surrogate backward)
    v[t] = reset(h[t], s[t]) = h[t] · (1 - s[t])  # hard reset to 0 (the spike detached if asked)

and :meth:`Neuron.magnitude` gives the levels |s[t]| the listeners hear (the spikes themselves
unless a neuron fires negative spikes). :meth:`Neuron.multi_step` runs that loop with autograd
over the leading time dimension; a neuron may override it with a fused path (the LIF does,
:mod:`.lif`). A new neuron is a subclass that writes :meth:`Neuron.charge` (and any parameter it
reads from the config, ``config_params``), registered with ``@register_neuron("name")``;
``SpikeBertConfig(neuron="name")`` then builds the model with it. A neuron with several spike
levels reads ``spike_levels`` (it names it in ``config_params``); one with a learned output scale
returns it from :meth:`Neuron.gain` (it multiplies what :meth:`Neuron.forward` returns;
``scaled=False`` leaves it to the caller). :mod:`.multilevel` has the two neurons beyond one bit,
``int`` and ``bispike``. The membrane starts at 0 in every call: no state leaks from one batch to
the next.
"""

from __future__ import annotations

import torch
from torch import nn

from spikebert.neurons.surrogate import Heaviside, get_surrogate

# the neuron defaults (SpikeBertConfig takes its defaults from here)
THRESHOLD = 1.0
SURROGATE = "atan"
DETACH_RESET = True


class SpikeSource(nn.Module):
    """A named neuron group: emits spikes and calls ``listener(name, spikes, mask)`` for each of
    its listeners (``mask`` ``[B, L]`` marks real tokens, or is None)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.listeners: list = []

    def emit(self, spikes: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for listener in self.listeners:
            listener(self.name, spikes, mask)
        return spikes

    def neuron_groups(self) -> dict[str, "SpikeSource"]:
        return {self.name: self}


class Neuron(SpikeSource):
    """A multi-step spiking neuron ``x [T, ...] -> spikes [T, ...]`` (see the module docstring)."""

    config_params: tuple[str, ...] = ()  # SpikeBertConfig fields this neuron reads besides the common ones

    def __init__(self, threshold: float = THRESHOLD, surrogate: str = SURROGATE, surrogate_alpha: float | None = None,
                 detach_reset: bool = DETACH_RESET, name: str = "neuron"):
        super().__init__(name)
        self.threshold, self.detach_reset = float(threshold), detach_reset
        self.surrogate = get_surrogate(surrogate)
        self.alpha = float(self.surrogate.alpha if surrogate_alpha is None else surrogate_alpha)

    @classmethod
    def from_config(cls, config, name: str, threshold: float | None = None) -> "Neuron":
        """The neuron as ``config`` (a :class:`~spikebert.SpikeBertConfig`) sets it; ``threshold``
        overrides the config's (the attention neurons fire at half of it)."""
        return cls(threshold=config.threshold if threshold is None else threshold, surrogate=config.surrogate,
                   surrogate_alpha=config.surrogate_alpha, detach_reset=config.detach_reset, name=name,
                   **{p: getattr(config, p) for p in cls.config_params})

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, surrogate={self.surrogate.name}, detach_reset={self.detach_reset}"

    def charge(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fire(self, h: torch.Tensor) -> torch.Tensor:
        return Heaviside.apply(h - self.threshold, self.surrogate, self.alpha)

    def reset(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return h * (1.0 - (s.detach() if self.detach_reset else s))

    def gain(self) -> torch.Tensor | None:
        """The learned scale of the neuron's output (the ``bispike`` amplitude), or None."""
        return None

    def magnitude(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """The levels |s| of spikes ``s`` fired at membrane ``h``, with their surrogate gradient:
        ``s`` itself for a neuron whose spikes are never negative."""
        return s

    def forward_autograd(self, x: torch.Tensor, levels: bool = False):
        """charge → fire → reset at every step, as a plain autograd loop (the reference a fused
        path is tested against); with ``levels`` also the levels |s| (:meth:`magnitude`)."""
        v = torch.zeros_like(x[0])
        out, mags = [], []
        for t in range(x.shape[0]):
            h = self.charge(v, x[t])
            s = self.fire(h)
            out.append(s)
            if levels:
                mags.append(self.magnitude(h, s))
            v = self.reset(h, s)
        return (torch.stack(out), torch.stack(mags)) if levels else torch.stack(out)

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_autograd(x)

    def spikes_and_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The spikes of every step and their levels |s| (the same tensor for a neuron whose
        spikes are never negative)."""
        s = self.multi_step(x)
        return s, s

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, scaled: bool = True) -> torch.Tensor:
        """Fire over the T steps, tell the listeners the levels, return the spikes (times the
        amplitude, when the neuron has one and ``scaled``)."""
        s, levels = self.spikes_and_levels(x)
        self.emit(levels, mask)
        gain = self.gain() if scaled else None
        return s if gain is None else s * gain


NEURONS: dict[str, type[Neuron]] = {}


def register_neuron(name: str):
    """Class decorator: make a :class:`Neuron` subclass available as ``SpikeBertConfig(neuron=name)``."""

    def add(cls: type[Neuron]) -> type[Neuron]:
        NEURONS[name] = cls
        return cls

    return add


def get_neuron(name: str) -> type[Neuron]:
    try:
        return NEURONS[name]
    except KeyError:
        raise ValueError(f"unknown neuron {name!r}; choose from {', '.join(NEURONS)}") from None


def has_levels(name: str) -> bool:
    """Whether the neuron ``name`` reads ``spike_levels`` (the ``int`` neuron)."""
    return "spike_levels" in get_neuron(name).config_params


@register_neuron("if")
class IF(Neuron):
    """Integrate-and-fire, no leak: ``h = v + x`` (SpikingJelly's ``IFNode`` with hard reset)."""

    def charge(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v + x
