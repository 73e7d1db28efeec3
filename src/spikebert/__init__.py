"""spikebert: distil a BERT-family encoder into a spiking Transformer text classifier."""

from spikebert.modeling_spikebert import (SpikeBertConfig, SpikeBertForSequenceClassification, SpikeBertModel,
                                 register_auto_classes)

from spikebert.predict import Classifier  # noqa: E402

register_auto_classes()

__version__ = "0.1.0"
__all__ = ["Classifier", "SpikeBertConfig", "SpikeBertForSequenceClassification", "SpikeBertModel", "__version__"]
