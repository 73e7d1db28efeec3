"""Listening to neuron groups: firing rates over real tokens, counted or differentiable.

A listener is any callable ``listener(name, spikes, mask)`` attached to the model's declared
neuron groups (``with model.listen(listener): ...``); ``spikes`` are the group's spike levels
(|s|, whole numbers >= 0: 0/1 for a binary neuron, 0..D for ``int``; see
:mod:`spikebert.neurons.base`), ``[T, B, L, D]`` or
``[T, B, heads, L, Dh]``, ``mask`` ``[B, L]`` (1 for a real token) or None. Padded tokens never
count: a sentence's rates are the same alone and in a padded batch.

- :class:`SpikeRecorder` counts spike levels, non-zero outputs and neuron-steps per group (floats,
  no gradient): the firing rates (mean level per neuron and step) and non-zero shares of
  ``model.record_spikes()``, the energy report and ``spikebert inspect``.
- :class:`RateMeter` keeps each group's spike levels per sentence and firing rate as tensors that
  back-propagate through the surrogate gradient: the model's ``spike_rate`` output, for a
  firing-rate penalty, and the differentiable energy estimate, for an energy penalty.
"""

from __future__ import annotations

import torch


def token_mask(mask: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """``mask [B, L]`` shaped to broadcast against ``spikes`` (4-d or 5-d, see the module docstring)."""
    m = mask.to(spikes.dtype)
    return m[None, :, None, :, None] if spikes.dim() == 5 else m[None, :, :, None]


def real_slots(spikes: torch.Tensor, mask: torch.Tensor | None) -> float:
    """Neuron-steps of ``spikes`` that belong to real tokens."""
    if mask is None:
        return float(spikes.numel())
    return float(mask.sum().item()) * spikes.numel() / (mask.shape[0] * mask.shape[1])


def per_sentence(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[T, B, ...]`` summed over every dimension but the batch: ``[B]``."""
    return x.movedim(1, 0).flatten(1).sum(1)


class MaskedSum(torch.autograd.Function):
    """Each sentence's ``(spikes · mask)`` sum, ``[B]``, keeping the mask as a plain attribute, not
    a saved tensor: the sum may then run inside a block that recomputes its activations in
    backward (``torch.utils.checkpoint``) without adding a tensor its recomputation would not save."""

    @staticmethod
    def forward(ctx, spikes, m):
        ctx.m, ctx.shape = m, spikes.shape
        return per_sentence(spikes * m)

    @staticmethod
    def backward(ctx, grad):
        g = grad.view(1, -1, *([1] * (len(ctx.shape) - 2)))
        return (g * ctx.m).expand(ctx.shape), None


class SpikeRecorder:
    """Per named neuron group, over real tokens only: the sum of spike levels (``spikes``: a
    level of k counts k), the neuron-steps with a non-zero output (``nonzero``) and the
    neuron-steps observed (``slots``)."""

    def __init__(self):
        self.spikes: dict[str, float] = {}
        self.nonzero: dict[str, float] = {}
        self.slots: dict[str, float] = {}

    @torch.no_grad()
    def record(self, name: str, spikes: torch.Tensor, mask: torch.Tensor | None):
        m = None if mask is None else token_mask(mask, spikes)
        total = spikes.sum() if m is None else (spikes * m).sum()
        fired = (spikes > 0).to(spikes.dtype)
        fired = fired.sum() if m is None else (fired * m).sum()
        self.spikes[name] = self.spikes.get(name, 0.0) + total.item()
        self.nonzero[name] = self.nonzero.get(name, 0.0) + fired.item()
        self.slots[name] = self.slots.get(name, 0.0) + real_slots(spikes, mask)

    __call__ = record

    def rates(self) -> dict[str, float]:
        """Each group's firing rate: the mean spike level per neuron and step (for a binary
        neuron, the share of neuron-steps that spike)."""
        return {k: (self.spikes[k] / self.slots[k] if self.slots[k] else 0.0) for k in self.spikes}

    def nonzero_shares(self) -> dict[str, float]:
        """Each group's share of neuron-steps whose output is not zero (its rate, when binary)."""
        return {k: (self.nonzero[k] / self.slots[k] if self.slots[k] else 0.0) for k in self.spikes}


class RateMeter:
    """Each group's spikes per sentence (``totals[name]``, ``[B]``) and firing rate over real
    tokens in one forward call, as differentiable tensors: the model's ``spike_rate`` output and
    the energy estimate of :func:`spikebert.analysis.energy.energy_ratio_estimate` read them.

    Listening only sums (spikes, and real neuron-steps); the division waits for :meth:`mean`, out
    of any block that recomputes its activations, where no tensor may be saved that its
    recomputation would not save again."""

    def __init__(self):
        self.totals: dict[str, torch.Tensor] = {}
        self.slots: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, spikes: torch.Tensor, mask: torch.Tensor | None):
        if mask is None:
            self.totals[name], self.slots[name] = per_sentence(spikes), torch.tensor(float(spikes.numel()))
            return
        per_token = spikes.numel() / (mask.shape[0] * mask.shape[1])
        self.totals[name] = MaskedSum.apply(spikes, token_mask(mask, spikes))
        self.slots[name] = mask.detach().sum().to(spikes.dtype) * per_token  # a tensor: no device sync

    def rates(self) -> dict[str, torch.Tensor]:
        return {k: self.totals[k].sum() / self.slots[k].to(self.totals[k].device).clamp(min=1.0)
                for k in self.totals}

    def mean(self) -> torch.Tensor:
        """The mean over groups of each group's firing rate (a scalar tensor)."""
        return torch.stack(list(self.rates().values())).mean()
