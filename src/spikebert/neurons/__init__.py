"""Spiking parts that plug in, each registered by name:

- :mod:`.surrogate`: surrogate gradients (``get_surrogate("atan")``), apart from the dynamics;
- :mod:`.base`: a named neuron group (:class:`SpikeSource`) and the neuron base (charge, fire,
  reset) with its registry (``get_neuron("lif")``; ``if`` is the leak-free example);
- :mod:`.lif`: the multi-step LIF with its written-out BPTT, the model's default and fast path;
- :mod:`.multilevel`: spikes beyond one bit, ``int`` (counts 0..D a step) and ``bispike``
  (-1, 0, +1 times a learned amplitude), with their fused paths;
- :mod:`.encoding`: input encodings (``real``, ``spike``; the spiking one is the group ``embed``);
- :mod:`.recording`: listeners on the groups: the spike recorder and the differentiable rate.
"""

from spikebert.neurons.base import NEURONS, IF, Neuron, SpikeSource, get_neuron, has_levels, register_neuron
from spikebert.neurons.encoding import ENCODINGS, INPUT_GROUP, get_encoding, register_encoding
from spikebert.neurons.lif import LIF
from spikebert.neurons.multilevel import SPIKE_LEVELS, BiSpikeLIF, IntLIF
from spikebert.neurons.recording import RateMeter, SpikeRecorder
from spikebert.neurons.surrogate import SURROGATES, Heaviside, get_surrogate

__all__ = ["ENCODINGS", "IF", "INPUT_GROUP", "LIF", "NEURONS", "SPIKE_LEVELS", "SURROGATES", "BiSpikeLIF",
           "Heaviside", "IntLIF", "Neuron", "RateMeter", "SpikeRecorder", "SpikeSource", "get_encoding", "get_neuron",
           "get_surrogate", "has_levels", "register_encoding", "register_neuron"]
