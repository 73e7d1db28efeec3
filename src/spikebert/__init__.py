"""spikebert: distil a BERT-family encoder into a spiking Transformer text classifier."""

from spikebert.modeling_spikebert import (INPUT_ENCODINGS, SpikeBertConfig, SpikeBertForSequenceClassification,
                                          SpikeBertModel, SpikeBertModelOutput, SpikeBertSequenceClassifierOutput,
                                          register_auto_classes)
from spikebert.neurons import get_neuron

from spikebert.predict import Classifier  # noqa: E402

register_auto_classes()

__version__ = "0.1.0"
__all__ = ["INPUT_ENCODINGS", "Classifier", "SpikeBertConfig", "SpikeBertForSequenceClassification", "SpikeBertModel",
           "SpikeBertModelOutput", "SpikeBertSequenceClassifierOutput", "__version__", "get_neuron"]
