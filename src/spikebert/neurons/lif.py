"""Leaky integrate-and-fire neurons, multi-step.

Dynamics, step by step over the leading time dimension T (SpikingJelly's
``LIFNode(tau, decay_input=True, v_reset=0.0, step_mode='m')``):

    h[t] = v[t-1] + (x[t] - v[t-1]) / tau        # charge
    s[t] = H(h[t] - threshold)                    # fire at h >= threshold
    v[t] = h[t] · (1 - s[t])                      # hard reset to 0

The backward pass is written out (back-propagation through time with the surrogate derivative)
so that a layer keeps only its membrane potentials for backward, not every intermediate of an
autograd loop. On CUDA both loops are fused by ``torch.compile`` (see :func:`kernels`). ``detach_reset`` drops the gradient through the reset, as in the reference.

The membrane starts at 0 in every call: no state can leak from one batch to the next, and there is
nothing to reset by hand. Firing rates are recorded on request through :class:`SpikeRecorder`.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from spikebert.neurons.surrogate import Heaviside, Surrogate, get_surrogate


def lif_forward(x, tau: float, threshold: float):
    """Spikes and membrane potentials (before reset) of every step."""
    decay = 1.0 / tau
    v = torch.zeros_like(x[0])
    h_all = torch.empty_like(x)
    spikes = torch.empty_like(x)
    for t in range(x.shape[0]):
        h = v + (x[t] - v) * decay
        s = (h >= threshold).to(x.dtype)
        h_all[t], spikes[t] = h, s
        v = h * (1.0 - s)
    return spikes, h_all


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


def kernels(device_type: str):
    """The forward and backward loops for a device: plain PyTorch, or fused by ``torch.compile``.

    ``SPIKEBERT_NEURON_BACKEND``: ``auto`` (default: compiled on CUDA, where it fuses the per-step
    element-wise kernels; eager on CPU, where compiling costs 13 s to minutes per new shape and
    the matmuls dominate a step anyway), ``compile`` or ``eager``."""
    choice = os.environ.get(BACKEND_ENV, "auto")
    if choice not in ("auto", "compile", "eager"):
        raise ValueError(f"{BACKEND_ENV} must be auto, compile or eager, not {choice!r}")
    if choice == "eager" or (choice == "auto" and device_type != "cuda"):
        return lif_forward, lif_backward
    if not _compiled:
        _compiled["f"] = torch.compile(lif_forward, dynamic=True)
        _compiled["b"] = torch.compile(lif_backward, dynamic=True)
    return _compiled["f"], _compiled["b"]


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


class LIF(nn.Module):
    """Multi-step LIF: ``x [T, ...] -> spikes [T, ...]`` of exactly 0.0 and 1.0."""

    def __init__(self, tau: float = 2.0, threshold: float = 1.0, surrogate: str = "atan",
                 surrogate_alpha: float | None = None, detach_reset: bool = True, name: str = "lif"):
        super().__init__()
        if tau <= 1.0:
            raise ValueError(f"tau must be > 1 (got {tau})")
        self.tau, self.threshold, self.detach_reset, self.name = float(tau), float(threshold), detach_reset, name
        self.surrogate = get_surrogate(surrogate)
        self.alpha = float(self.surrogate.alpha if surrogate_alpha is None else surrogate_alpha)
        self.recorder: SpikeRecorder | None = None

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, threshold={self.threshold}, surrogate={self.surrogate.name}, "
                f"detach_reset={self.detach_reset}")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        spikes = MultiStepLIF.apply(x, self.tau, self.threshold, self.surrogate, self.alpha, self.detach_reset)
        if self.recorder is not None:
            self.recorder.record(self.name, spikes, mask)
        return spikes

    def forward_autograd(self, x: torch.Tensor) -> torch.Tensor:
        """The same dynamics as a plain autograd loop: the reference the fused backward is tested
        against, and a template for new neuron models."""
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            h = v + (x[t] - v) / self.tau
            s = Heaviside.apply(h - self.threshold, self.surrogate, self.alpha)
            out.append(s)
            v = h * (1.0 - (s.detach() if self.detach_reset else s))
        return torch.stack(out)


class SpikeRecorder:
    """Per named neuron group: spikes emitted and neuron-steps observed, over real tokens only.

    ``mask`` is ``[B, L]``; spikes are ``[T, B, L, D]`` or ``[T, B, heads, L, Dh]``.
    """

    def __init__(self):
        self.spikes: dict[str, float] = {}
        self.slots: dict[str, float] = {}

    @torch.no_grad()
    def record(self, name: str, spikes: torch.Tensor, mask: torch.Tensor | None):
        if mask is None:
            total, slots = spikes.sum().item(), float(spikes.numel())
        else:
            m = mask.to(spikes.dtype)
            m = m[None, :, None, :, None] if spikes.dim() == 5 else m[None, :, :, None]
            total = (spikes * m).sum().item()
            per_token = spikes.numel() / (mask.shape[0] * mask.shape[1])
            slots = m.sum().item() * per_token
        self.spikes[name] = self.spikes.get(name, 0.0) + total
        self.slots[name] = self.slots.get(name, 0.0) + slots

    def rates(self) -> dict[str, float]:
        return {k: (self.spikes[k] / self.slots[k] if self.slots[k] else 0.0) for k in self.spikes}
