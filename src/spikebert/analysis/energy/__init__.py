"""Theoretical energy of a SpikeBERT model against a BERT, from counted operations.

- :mod:`.rules`: the counting rules (ANN MACs, the SNN's ACs and MACs under the strict rule, the
  paper's convention and the dense residual; a spike of level k is k accumulates), as data;
- :mod:`.estimate`: the strict rule on one batch as a differentiable tensor (the energy penalty);
- :mod:`.measure`: counting a model's spike levels on texts and the report :func:`measure` gives;
- :mod:`.plots`: the report's figures (:func:`save_plots`).

Every public name of the former single module is importable from here.
"""

from spikebert.analysis.energy.estimate import energy_ratio_estimate
from spikebert.analysis.energy.measure import (CPU_NOTE, count_spikes, firing_rates, measure, ms_per_sentence,
                                               split_group)
from spikebert.analysis.energy.plots import save_plots
from spikebert.analysis.energy.rules import (CONVENTIONS, E_AC_PJ, E_MAC_PJ, HEADLINE, HEADLINE_WHY, PAPER_FIGURES,
                                             ROLES, AnnShape, Ops, ann_layer_adds, ann_layer_macs, ann_ops, snn_ops)

__all__ = ["CONVENTIONS", "CPU_NOTE", "E_AC_PJ", "E_MAC_PJ", "HEADLINE", "HEADLINE_WHY", "PAPER_FIGURES", "ROLES",
           "AnnShape", "Ops", "ann_layer_adds", "ann_layer_macs", "ann_ops", "count_spikes", "energy_ratio_estimate",
           "firing_rates", "measure", "ms_per_sentence", "save_plots", "snn_ops", "split_group"]
