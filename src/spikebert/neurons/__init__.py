"""Spiking neurons: surrogate gradients (:mod:`.surrogate`) apart from the neuron dynamics
(:mod:`.lif`: the multi-step LIF with its written-out BPTT, and the spike recorder)."""
