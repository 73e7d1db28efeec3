"""Loading every kind of model folder this project saves, with one clear error for anything else.

A model folder is a standard `transformers` folder: ``config.json``, ``model.safetensors`` and the
tokenizer files. Only safetensors weights are ever loaded: a folder holding only a pickle
(``pytorch_model.bin``) is refused, since unpickling a stranger's file can run code.

:func:`is_spikebert` is the one answer to "is this a SpikeBERT folder, model or config". Teachers
(hub names, the default MiniLM, fine-tuned folders) are found and loaded by
:mod:`spikebert.teachers.loading`, which builds on this module (never the other way round).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from spikebert.errors import SpikeBertError, first_line
from spikebert.modeling_spikebert import SpikeBertConfig, register_auto_classes

WEIGHTS = "model.safetensors"


def is_spikebert(x) -> bool:
    """Whether ``x`` is SpikeBERT: a model (anything with a ``.config``), a config (an object or a
    ``config.json`` dict) or a model folder (a path; a folder that is not a model folder is an
    error naming what is wrong with it)."""
    if isinstance(x, (str, os.PathLike)):
        x = check_model_folder(x)
    if isinstance(x, Mapping):
        return x.get("model_type") == SpikeBertConfig.model_type
    config = getattr(x, "config", x)
    return getattr(config, "model_type", None) == SpikeBertConfig.model_type


def check_model_folder(path) -> dict:
    """The folder's config as a dict, or a clear error saying what is wrong with it."""
    p = Path(path)
    if not p.exists():
        raise SpikeBertError(f"{p}: no such model folder")
    if not p.is_dir():
        raise SpikeBertError(f"{p}: not a folder (a model is a folder with config.json and {WEIGHTS})")
    check_manifest(p)
    cfg_path = p / "config.json"
    if not cfg_path.exists():
        raise SpikeBertError(f"{p}: not a model folder (no config.json)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpikeBertError(f"{cfg_path}: malformed config ({e})") from None
    if not isinstance(cfg, dict) or "model_type" not in cfg:
        raise SpikeBertError(f"{cfg_path}: not a transformers config (no model_type)")
    _check_neuron(cfg, cfg_path)
    shards = list(p.glob("model-*.safetensors")) + list(p.glob("*.safetensors.index.json"))
    if not (p / WEIGHTS).exists() and not shards:
        if (p / "pytorch_model.bin").exists():
            raise SpikeBertError(f"{p}: weights are only a pickle (pytorch_model.bin); spikebert loads "
                                 "safetensors only. Convert it once with a trusted transformers: "
                                 "from_pretrained(...).save_pretrained(..., safe_serialization=True)")
        raise SpikeBertError(f"{p}: no {WEIGHTS} in the model folder")
    if (p / WEIGHTS).exists():
        _check_safetensors(p / WEIGHTS)
    return cfg


def check_manifest(folder: Path):
    """A folder this project wrote carries a manifest (:mod:`spikebert.training.manifest`): every file
    it lists must be whole. A folder without one (an older version's, or not this project's) is
    checked by the safetensors checks alone."""
    from spikebert.training.manifest import has_manifest, verify

    problems = verify(folder) if has_manifest(folder) else []
    if problems:
        raise SpikeBertError(f"{problems[0]}: the model folder is damaged; restore it from a copy or train it again")


def _check_neuron(cfg: dict, cfg_path: Path):
    """A SpikeBERT config whose neuron this version does not know is named as such."""
    from spikebert.neurons import NEURONS

    if is_spikebert(cfg) and cfg.get("neuron", "lif") not in NEURONS:
        raise SpikeBertError(f"{cfg_path}: the model's neuron {cfg['neuron']!r} is not one this version of "
                             f"spikebert knows ({', '.join(NEURONS)}); upgrade spikebert to load it")


def _check_safetensors(path: Path):
    """Reads the header and checks every tensor's bytes are there (a truncated file is caught here)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception as e:
        raise SpikeBertError(f"{path}: corrupted or truncated weight file ({e})") from None
    size = path.stat().st_size
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        raise SpikeBertError(f"{path}: weight file is {size} bytes, its header says {8 + n + end}: truncated or corrupted")
    if not keys:
        raise SpikeBertError(f"{path}: weight file holds no tensors")


def load_classifier(path, num_labels: int | None = None, time_steps: int | None = None):
    """A saved classifier (SpikeBERT or any `transformers` sequence classifier) and its tokenizer.
    ``time_steps`` runs a SpikeBERT model at another T than it was saved with (T owns no weights)."""
    from transformers import AutoModelForSequenceClassification

    register_auto_classes()
    cfg = check_model_folder(path)
    if "architectures" in cfg and cfg["architectures"] and not any(
            a.endswith("ForSequenceClassification") for a in cfg["architectures"]):
        raise SpikeBertError(f"{path}: a {cfg['architectures'][0]} is not a text classifier; "
                             "fine-tune it first (spikebert teacher finetune)")
    _check_shapes(path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), use_safetensors=True)
    except SpikeBertError:
        raise
    except Exception as e:  # shape mismatch between config and weights, unknown model type, ...
        raise SpikeBertError(f"{path}: cannot load the model: {first_line(e)}") from None
    model.eval()
    tokenizer = load_tokenizer(path)
    if num_labels is not None and model.config.num_labels != num_labels:
        raise SpikeBertError(f"{path}: the model has {model.config.num_labels} classes, the data {num_labels}")
    if time_steps is not None:
        if not is_spikebert(model):
            raise SpikeBertError(f"{path}: --time-steps applies to a SpikeBERT model, not a {model.config.model_type}")
        if time_steps < 1:
            raise SpikeBertError(f"--time-steps must be >= 1 (got {time_steps})")
        model.config.time_steps = time_steps
    return model, tokenizer


def _check_shapes(path):
    """Compare the weight file's tensor shapes with the ones the config implies, so that a config
    that does not fit its weights is named as such (tensor, both shapes)."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForSequenceClassification

    weights = Path(path) / WEIGHTS
    if not weights.exists():
        return
    try:
        config = AutoConfig.from_pretrained(str(path))
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in
                        AutoModelForSequenceClassification.from_config(config).state_dict().items()}
    except Exception as e:
        raise SpikeBertError(f"{path}/config.json: not a usable config: {first_line(e)}") from None
    with safe_open(str(weights), framework="pt") as f:
        for name in f.keys():
            if name in expected and tuple(f.get_slice(name).get_shape()) != expected[name]:
                raise SpikeBertError(f"{path}: config.json does not match the weights: tensor {name} is "
                                     f"{tuple(f.get_slice(name).get_shape())} in {WEIGHTS}, the config implies "
                                     f"{expected[name]}")


def load_tokenizer(path):
    """The tokenizer saved in a model folder (or of a hub model), or a clear error."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise SpikeBertError(f"{path}: no usable tokenizer in the folder: {first_line(e)}") from None


def load_state_strict(model: torch.nn.Module, state: dict, source, skip_prefixes=("classifier.",)):
    """Load weights, failing on any missing or mismatched tensor outside ``skip_prefixes``
    (the reference silently skips them). Returns the names that were skipped."""
    own = model.state_dict()
    problems, skipped = [], []
    for name, tensor in own.items():
        if name.startswith(skip_prefixes):
            if name in state and state[name].shape == tensor.shape:
                continue
            skipped.append(name)
            continue
        if name not in state:
            problems.append(f"missing tensor {name}")
        elif state[name].shape != tensor.shape:
            problems.append(f"tensor {name} has shape {tuple(state[name].shape)} in {source}, "
                            f"the model expects {tuple(tensor.shape)}")
    extra = [k for k in state if k not in own]
    problems += [f"unexpected tensor {k}" for k in extra[:3]]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise SpikeBertError(f"{source}: does not fit the model: {'; '.join(problems[:3])}{more}")
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in skipped}, strict=False)
    return skipped
