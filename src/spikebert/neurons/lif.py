"""Leaky integrate-and-fire neurons, multi-step.

Dynamics, step by step over the leading time dimension T (SpikingJelly's
``LIFNode(tau, decay_input=True, v_reset=0.0, step_mode='m')``):

    h[t] = v[t-1] + (x[t] - v[t-1]) / tau        # charge
    s[t] = H(h[t] - threshold)                    # fire at h >= threshold
    v[t] = h[t] · (1 - s[t])                      # hard reset to 0

The backward pass is written out (back-propagation through time with the surrogate derivative)
so that a layer keeps only its membrane potentials for backward, not every intermediate of an
autograd loop. On CUDA both loops are fused by ``torch.compile`` (see :func:`kernels`).
``detach_reset`` drops the gradient through the reset, as in the reference.

The membrane starts at 0 in every call: no state can leak from one batch to the next, and there is
nothing to reset by hand. The LIF is a :class:`~spikebert.neurons.base.Neuron` registered as
``lif``: it emits its spikes to the group's listeners (the recorder, the rate penalty) like any other.
"""

from __future__ import annotations

import os

import torch

from spikebert.neurons.base import DETACH_RESET, SURROGATE, THRESHOLD, Neuron, register_neuron
from spikebert.neurons.recording import SpikeRecorder  # noqa: F401  (its home before neurons/recording.py)
from spikebert.neurons.surrogate import Surrogate

TAU = 2.0  # the membrane time constant's default (SpikeBertConfig takes it from here)


def leaky_forward(x, tau: float, fire_reset, *params):
    """The leaky charge of every step, then ``fire_reset(h, *params) -> (spikes, v)``: spikes and
    membrane potentials (before reset) of every step. Written for ``torch.compile`` to fuse (the
    step function is inlined); :mod:`.multilevel`'s neurons share it."""
    decay = 1.0 / tau
    v = torch.zeros_like(x[0])
    h_all = torch.empty_like(x)
    spikes = torch.empty_like(x)
    for t in range(x.shape[0]):
        h = v + (x[t] - v) * decay
        s, v = fire_reset(h, *params)
        h_all[t], spikes[t] = h, s
    return spikes, h_all


def _lif_step(h, threshold: float):
    s = (h >= threshold).to(h.dtype)
    return s, h * (1.0 - s)


def lif_forward(x, tau: float, threshold: float):
    """Spikes and membrane potentials (before reset) of every step."""
    return leaky_forward(x, tau, _lif_step, threshold)


def lif_backward(grad_spikes, h_all, tau: float, threshold: float, surrogate_grad, alpha: float, detach_reset: bool):
    """Back-propagation through time: dL/dx of every step from dL/dspikes."""
    grad_x = torch.empty_like(h_all)
    grad_v = torch.zeros_like(h_all[0])  # dL/dv[t], carried backwards in time
    for t in range(h_all.shape[0] - 1, -1, -1):
        h = h_all[t]
        s = (h >= threshold).to(h.dtype)
        sg = surrogate_grad(h - threshold, alpha)
        grad_h = grad_spikes[t] * sg + grad_v * (1.0 - s)
        if not detach_reset:
            grad_h = grad_h - grad_v * h * sg
        grad_x[t] = grad_h / tau
        grad_v = grad_h * (1.0 - 1.0 / tau)
    return grad_x


BACKEND_ENV = "SPIKEBERT_NEURON_BACKEND"
_compiled: dict = {}


def backend_kernels(name: str, forward, backward, device_type: str):
    """A neuron's forward and backward loops for a device: plain PyTorch, or fused by
    ``torch.compile`` (compiled once per ``name``).

    ``SPIKEBERT_NEURON_BACKEND``: ``auto`` (default: compiled on CUDA, where it fuses the per-step
    element-wise kernels; eager on CPU, where compiling costs seconds to minutes per new shape
    and the matmuls dominate a step anyway), ``compile`` or ``eager``."""
    choice = os.environ.get(BACKEND_ENV, "auto")
    if choice not in ("auto", "compile", "eager"):
        raise ValueError(f"{BACKEND_ENV} must be auto, compile or eager, not {choice!r}")
    if choice == "eager" or (choice == "auto" and device_type != "cuda") or torch.compiler.is_compiling():
        return forward, backward  # inside a compiled block (SPIKEBERT_COMPILE=blocks): traced into its graph
    if name not in _compiled:
        _compiled[name] = (torch.compile(forward, dynamic=True), torch.compile(backward, dynamic=True))
    return _compiled[name]


def kernels(device_type: str):
    """The LIF's forward and backward loops for a device (:func:`backend_kernels`)."""
    return backend_kernels("lif", lif_forward, lif_backward, device_type)


class MultiStepLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, tau: float, threshold: float, surrogate: Surrogate, alpha: float, detach_reset: bool):
        fwd, _ = kernels(x.device.type)
        spikes, h_all = fwd(x, tau, threshold)
        ctx.save_for_backward(h_all)
        ctx.params = (tau, threshold, surrogate, alpha, detach_reset)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        (h_all,) = ctx.saved_tensors
        tau, threshold, surrogate, alpha, detach_reset = ctx.params
        _, bwd = kernels(h_all.device.type)
        grad_x = bwd(grad_spikes.contiguous(), h_all, tau, threshold, surrogate.grad, alpha, detach_reset)
        return grad_x, None, None, None, None, None


@register_neuron("lif")
class LIF(Neuron):
    """Multi-step LIF: ``x [T, ...] -> spikes [T, ...]`` of exactly 0.0 and 1.0; the fused
    :class:`MultiStepLIF` is its fast path, :meth:`forward_autograd` the same dynamics as a plain
    autograd loop of :meth:`charge`, ``fire`` and ``reset``."""

    config_params = ("tau",)

    def __init__(self, tau: float = TAU, threshold: float = THRESHOLD, surrogate: str = SURROGATE,
                 surrogate_alpha: float | None = None, detach_reset: bool = DETACH_RESET, name: str = "lif"):
        super().__init__(threshold, surrogate, surrogate_alpha, detach_reset, name)
        if tau <= 1.0:
            raise ValueError(f"tau must be > 1 (got {tau})")
        self.tau = float(tau)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, " + super().extra_repr()

    def charge(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v + (x - v) / self.tau

    def multi_step(self, x: torch.Tensor) -> torch.Tensor:
        return MultiStepLIF.apply(x, self.tau, self.threshold, self.surrogate, self.alpha, self.detach_reset)
