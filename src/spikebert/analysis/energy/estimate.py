"""The energy estimate for training: the strict rule on one batch, as a tensor that back-propagates
through the surrogate gradients of the spike levels a :class:`~spikebert.neurons.recording.RateMeter`
heard (:mod:`.rules` has the counting)."""

from __future__ import annotations

import torch

from spikebert.analysis.energy.rules import AnnShape, ann_ops, snn_ops
from spikebert.neurons.recording import RateMeter


def energy_ratio_estimate(model, attention_mask: torch.Tensor, meter: RateMeter) -> torch.Tensor:
    """The batch's energy by the strict rule as a fraction of a BERT of the teacher's width at the
    student's depth (:meth:`AnnShape.reference_for`: the MiniLM teacher's own shape), a tensor
    that back-propagates through the spike counts ``meter`` heard in the forward call: what an
    energy penalty (``LossWeights.energy``) lowers. With the same texts it is the
    ``energy_ratio`` that :func:`measure` reports without a teacher."""
    lengths = attention_mask.sum(1)
    snn = sum(*snn_ops(model.config, lengths, meter.totals, "strict"))
    ann = sum(*ann_ops(AnnShape.reference_for(model.config), lengths.tolist()))
    return snn.energy_mj() / ann.energy_mj()
