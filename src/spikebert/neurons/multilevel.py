"""Neurons whose spikes carry more than one bit, each step still only additions downstream.

Both charge as the LIF does (``h[t] = v[t-1] + (x[t] - v[t-1]) / tau``, :mod:`.lif`) and differ
in what they fire and how they reset:

``int`` (:class:`IntLIF`): an integer spike count 0..D per step (D = ``spike_levels``):

    s[t] = Σ_{k=1..D} H(h[t] - k·θ)        # = clamp(floor(h/θ), 0, D): how many times θ fits in h
    v[t] = h[t] - s[t]·θ                   # reset by subtraction

which is exactly what D binary virtual steps of an integrate-and-fire neuron with reset by
subtraction emit from h (so on a binary chip a count of k is k spikes, k accumulates). Its
surrogate is that of the D steps: ``ds/dh = Σ_k g'(h - k·θ)``, the registered surrogate at each
threshold (with D = 1 the neuron is the LIF with reset by subtraction, same spikes and gradient
shape). The reset subtracts the count (detached with ``detach_reset``, as the LIF's).

``bispike`` (:class:`BiSpikeLIF`, SpikeLM's bi-directional spikes): a ternary spike and a learned
amplitude α per neuron group (a scalar parameter, initially 1.0):

    s[t] = H(h[t] - θ) - H(-h[t] - θ)      # +1 at h >= θ, -1 at h <= -θ, else 0
    v[t] = h[t] · (1 - |s[t]|)             # hard reset to 0 after either spike
    out  = α · s

Its surrogate is the sum of both sides' (``g'(h - θ) + g'(-h - θ)``); the level |s| the listeners
hear has the derivative ``g'(h - θ) - g'(-h - θ)`` (firing either spike raises it). A hard reset
keeps the membrane where the LIF's goes, whatever the sign: a spike of either sign empties it.
α is a scale that the next layer folds into its weights (or the attention into its scale), so it
costs no operation: the energy count reads |s|.

As for the LIF, the multi-step forward and backward (back-propagation through time) are written
out, fused by ``torch.compile`` on CUDA (:func:`~spikebert.neurons.lif.backend_kernels`) and
eager on CPU; :meth:`~spikebert.neurons.base.Neuron.forward_autograd` (charge, fire, reset,
magnitude) is the reference they are tested against.
"""

from __future__ import annotations

import torch
from torch import nn

from spikebert.neurons.base import DETACH_RESET, SURROGATE, THRESHOLD, register_neuron
from spikebert.neurons.lif import LIF, TAU, backend_kernels, leaky_forward
from spikebert.neurons.surrogate import Heaviside, Surrogate

SPIKE_LEVELS = 4  # the int neuron's D when none is given (SpikeBertConfig resolves it from here)
AMPLITUDE = "amplitude"  # the bispike neuron's parameter name (stage 2 may start it afresh)


# ------------------------------------------------------------------------------------------ int

def _int_step(h, threshold: float, levels: int):
    s = torch.zeros_like(h)
    for k in range(1, levels + 1):
        s = s + (h >= k * threshold).to(h.dtype)
    return s, h - s * threshold


def int_forward(x, tau: float, threshold: float, levels: int):
    """Counts and membrane potentials (before reset) of every step."""
    return leaky_forward(x, tau, _int_step, threshold, levels)


def int_backward(grad_spikes, h_all, tau: float, threshold: float, levels: int, surrogate_grad, alpha: float,
                 detach_reset: bool):
    """Back-propagation through time: dL/dx of every step from dL/dcounts."""
    grad_x = torch.empty_like(h_all)
    grad_v = torch.zeros_like(h_all[0])
    for t in range(h_all.shape[0] - 1, -1, -1):
        h = h_all[t]
        sg = torch.zeros_like(h)
        for k in range(1, levels + 1):
            sg = sg + surrogate_grad(h - k * threshold, alpha)
        grad_h = grad_spikes[t] * sg + grad_v
        if not detach_reset:
            grad_h = grad_h - grad_v * threshold * sg
        grad_x[t] = grad_h / tau
        grad_v = grad_h * (1.0 - 1.0 / tau)
    return grad_x


class MultiStepInt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tau: float, threshold: float, levels: int, surrogate: Surrogate, alpha: float,
                detach_reset: bool):
        fwd, _ = backend_kernels("int", int_forward, int_backward, x.device.type)
        spikes, h_all = fwd(x, tau, threshold, levels)
        ctx.save_for_backward(h_all)
        ctx.params = (tau, threshold, levels, surrogate, alpha, detach_reset)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        (h_all,) = ctx.saved_tensors
        tau, threshold, levels, surrogate, alpha, detach_reset = ctx.params
        _, bwd = backend_kernels("int", int_forward, int_backward, h_all.device.type)
        grad_x = bwd(grad_spikes.contiguous(), h_all, tau, threshold, levels, surrogate.grad, alpha, detach_reset)
        return grad_x, None, None, None, None, None, None


@register_neuron("int")
class IntLIF(LIF):
    """Integer-valued LIF: counts 0..``spike_levels`` per step, reset by subtraction (see the
    module docstring); :class:`MultiStepInt` is its fast path."""

    config_params = ("tau", "spike_levels")

    def __init__(self, tau: float = TAU, spike_levels: int = SPIKE_LEVELS, threshold: float = THRESHOLD,
                 surrogate: str = SURROGATE, surrogate_alpha: float | None = None, detach_reset: bool = DETACH_RESET,
                 name: str = "int"):
        super().__init__(tau, threshold, surrogate, surrogate_alpha, detach_reset, name)
        if int(spike_levels) != spike_levels or spike_levels < 1:
            raise ValueError(f"spike_levels must be a whole number >= 1 (got {spike_levels})")
        self.spike_levels = int(spike_levels)

    def extra_repr(self) -> str:
        return f"spike_levels={self.spike_levels}, " + super().extra_repr()

    def fire(self, h: torch.Tensor) -> torch.Tensor:
        return sum(Heaviside.apply(h - k * self.threshold, self.surrogate, self.alpha)
                   for k in range(1, self.spike_levels + 1))

    def reset(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return h - (s.detach() if self.detach_reset else s) * self.threshold

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:
        return MultiStepInt.apply(x, self.tau, self.threshold, self.spike_levels, self.surrogate, self.alpha,
                                  self.detach_reset)


# -------------------------------------------------------------------------------------- bispike

def _bispike_step(h, threshold: float):
    pos, neg = (h >= threshold).to(h.dtype), (h <= -threshold).to(h.dtype)
    return pos - neg, h * (1.0 - pos - neg)


def bispike_forward(x, tau: float, threshold: float):
    """Ternary spikes and membrane potentials (before reset) of every step."""
    return leaky_forward(x, tau, _bispike_step, threshold)


def bispike_backward(grad_spikes, grad_levels, h_all, tau: float, threshold: float, surrogate_grad, alpha: float,
                     detach_reset: bool):
    """Back-propagation through time: dL/dx of every step from dL/dspikes and dL/dlevels."""
    grad_x = torch.empty_like(h_all)
    grad_v = torch.zeros_like(h_all[0])
    for t in range(h_all.shape[0] - 1, -1, -1):
        h = h_all[t]
        fired = ((h >= threshold) | (h <= -threshold)).to(h.dtype)
        sp, sn = surrogate_grad(h - threshold, alpha), surrogate_grad(-h - threshold, alpha)
        grad_h = grad_spikes[t] * (sp + sn) + grad_levels[t] * (sp - sn) + grad_v * (1.0 - fired)
        if not detach_reset:
            grad_h = grad_h - grad_v * h * (sp - sn)
        grad_x[t] = grad_h / tau
        grad_v = grad_h * (1.0 - 1.0 / tau)
    return grad_x


class MultiStepBiSpike(torch.autograd.Function):
    """Ternary spikes and their levels |s|, both differentiable (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, tau: float, threshold: float, surrogate: Surrogate, alpha: float, detach_reset: bool):
        fwd, _ = backend_kernels("bispike", bispike_forward, bispike_backward, x.device.type)
        spikes, h_all = fwd(x, tau, threshold)
        ctx.save_for_backward(h_all)
        ctx.params = (tau, threshold, surrogate, alpha, detach_reset)
        return spikes, spikes.abs()

    @staticmethod
    def backward(ctx, grad_spikes, grad_levels):
        (h_all,) = ctx.saved_tensors
        tau, threshold, surrogate, alpha, detach_reset = ctx.params
        _, bwd = backend_kernels("bispike", bispike_forward, bispike_backward, h_all.device.type)
        grad_x = bwd(grad_spikes.contiguous(), grad_levels.contiguous(), h_all, tau, threshold, surrogate.grad,
                     alpha, detach_reset)
        return grad_x, None, None, None, None, None


@register_neuron("bispike")
class BiSpikeLIF(LIF):
    """Bi-directional LIF: spikes -1, 0, +1 times a learned amplitude (``amplitude``, one per
    neuron group, initially 1.0); :class:`MultiStepBiSpike` is its fast path."""

    def __init__(self, tau: float = TAU, threshold: float = THRESHOLD, surrogate: str = SURROGATE,
                 surrogate_alpha: float | None = None, detach_reset: bool = DETACH_RESET, name: str = "bispike"):
        super().__init__(tau, threshold, surrogate, surrogate_alpha, detach_reset, name)
        self.amplitude = nn.Parameter(torch.ones(()))

    def gain(self) -> torch.Tensor:
        return self.amplitude

    def fire(self, h: torch.Tensor) -> torch.Tensor:
        return (Heaviside.apply(h - self.threshold, self.surrogate, self.alpha)
                - Heaviside.apply(-h - self.threshold, self.surrogate, self.alpha))

    def magnitude(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (Heaviside.apply(h - self.threshold, self.surrogate, self.alpha)
                + Heaviside.apply(-h - self.threshold, self.surrogate, self.alpha))

    def reset(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        fired = self.magnitude(h, s)
        return h * (1.0 - (fired.detach() if self.detach_reset else fired))

    def spikes_and_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return MultiStepBiSpike.apply(x, self.tau, self.threshold, self.surrogate, self.alpha, self.detach_reset)

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:
        return self.spikes_and_levels(x)[0]
