"""Model cards: the ``README.md`` of every model folder this project publishes.

The card opens with the YAML header the Hugging Face Hub reads (library, tags, language,
datasets, metrics, the labels' names) and then says, in prose, how the model was made (teacher,
stages, settings, data sizes), what it scores on dev, what it costs in energy against its teacher,
how often its neurons fire, and how to load it. It is made from what the folder already holds
(``config.json`` and ``metrics.json``) plus, when given, the run's energy report and stage times.
"""

from __future__ import annotations

import json
from pathlib import Path

from spikebert.training.checkpoint import atomic_write_text

CARD = "README.md"
KINDS = {"stage2": "a spiking Transformer (SpikeBERT) distilled from a fine-tuned teacher",
         "direct": "a spiking Transformer (SpikeBERT) trained on labels alone (no teacher)",
         "stage1": "a spiking Transformer (SpikeBERT) after pre-distillation only (no task head yet)",
         "teacher": "the fine-tuned teacher (an ANN) of a SpikeBERT student"}


def _pct(x) -> str:
    return "–" if x is None else f"{x * 100:.2f} %"


def _yaml_list(key: str, values) -> list[str]:
    values = [v for v in values if v]
    return [f"{key}:", *[f"- {json.dumps(str(v), ensure_ascii=False)}" for v in values]] if values else []


def header(config: dict, metrics: dict, language: str | None) -> str:
    spiking = config.get("model_type") == "spikebert"
    tags = ["text-classification", "knowledge-distillation"]
    tags += ["spiking-neural-network", "snn", "spikebert"] if spiking else ["spikebert-teacher"]
    lines = ["---", "library_name: spikebert" if spiking else "library_name: transformers",
             "pipeline_tag: text-classification", *_yaml_list("tags", tags),
             *_yaml_list("language", [language]), *_yaml_list("datasets", [metrics.get("task")]),
             *_yaml_list("metrics", ["accuracy", "f1"])]
    teacher = metrics.get("teacher")
    if teacher and not Path(str(teacher)).exists() and "/" in str(teacher):
        lines.append(f"base_model: {teacher}")  # a hub name, not a local folder
    return "\n".join([*lines, "---", ""])


def _made(config: dict, metrics: dict, stages: dict | None) -> list[str]:
    kind = metrics.get("kind", "")
    out = ["## How it was made", "", f"This is {KINDS.get(kind, 'a model saved by spikebert')}."]
    if config.get("model_type") == "spikebert":
        out.append(f"Student: {config.get('num_hidden_layers')} blocks × {config.get('hidden_size')} wide, "
                   f"{config.get('num_attention_heads')} heads, T = {config.get('time_steps')} time steps, "
                   f"LIF τ = {config.get('tau')}, threshold {config.get('threshold')}, input encoding "
                   f"`{config.get('input_encoding', 'real')}`.")
    if metrics.get("teacher"):
        out.append(f"Teacher: `{metrics['teacher']}`.")
    if metrics.get("init"):
        out.append(f"Stage 1 (pre-distillation) student: `{metrics['init']}`.")
    sizes = [f"{metrics[k]:,} {what}" for k, what in (("train_examples", "training texts (augmented ones included)"),
                                                       ("augmented_texts", "of them augmented"),
                                                       ("dev_examples", "dev texts")) if metrics.get(k) is not None]
    if sizes:
        out.append("Data: " + ", ".join(sizes) + ".")
    settings = {k: metrics.get(k) for k in ("distillation", "weights", "layer_map", "augment") if metrics.get(k)}
    args = metrics.get("args") or {}
    settings.update({k: args[k] for k in ("lr", "batch_size", "epochs", "seed") if k in args})
    if settings:
        out += ["", "Settings:", "", "```json", json.dumps(settings, indent=1, ensure_ascii=False), "```"]
    if stages:
        out += ["", "| stage | minutes | dev accuracy |", "|---|---|---|"]
        out += [f"| {name} | {(s.get('seconds') or 0) / 60:.1f} | {_pct(s.get('dev_accuracy'))} |"
                for name, s in stages.items()]
    return out + [""]


def _results(config: dict, metrics: dict, energy: dict | None) -> list[str]:
    out = ["## Results", ""]
    if metrics.get("dev_accuracy") is not None:
        out.append(f"Dev accuracy **{_pct(metrics['dev_accuracy'])}**, macro-F1 {_pct(metrics.get('dev_macro_f1'))} "
                   f"({metrics.get('dev_examples', '?')} dev texts; the model was selected on this dev set).")
    if energy:
        out.append(f"Estimated energy per sentence: {energy['snn_energy_mj']:.3f} mJ against its teacher's "
                   f"{energy['ann_energy_mj']:.3f} mJ, **{energy['energy_ratio'] * 100:.1f} %** "
                   f"(0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate, operations counted at the measured "
                   f"firing rates); mean firing rate {energy['firing_rate'] * 100:.1f} %.")
        rates = energy.get("firing_rates") or {}
        if rates:
            groups = sorted({g for layer in rates.values() for g in layer})
            out += ["", "| layer | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
            out += [f"| {name} | " + " | ".join(f"{layer[g] * 100:.1f} %" if g in layer else "–" for g in groups) + " |"
                    for name, layer in rates.items()]
    labels = config.get("id2label") or {}
    if labels:
        out += ["", "Labels: " + ", ".join(f"`{labels[k]}`" for k in sorted(labels, key=int)) + "."]
    return out + [""]


def _usage(config: dict) -> list[str]:
    lines = ["## How to use", "", "```python", "import spikebert  # registers the model with transformers",
             "from transformers import pipeline", "", 'clf = pipeline("text-classification", model="PATH")',
             'print(clf("a text to classify"))', "```", "", "or `spikebert predict --model PATH --text \"...\"`."]
    if config.get("model_type") == "spikebert":
        lines += ["", "Firing rates of every neuron group: `with model.record_spikes() as rec: model(**inputs)`, "
                  "then `rec.rates()`; energy against a teacher: `spikebert energy --model PATH`."]
    return lines + [""]


def write_model_card(folder, energy: dict | None = None, stages: dict | None = None,
                     language: str | None = None) -> Path:
    """Write ``folder/README.md`` from the folder's ``config.json`` and ``metrics.json``."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    m_path = folder / "metrics.json"
    metrics = json.loads(m_path.read_text(encoding="utf-8")) if m_path.exists() else {}
    language = language or metrics.get("language")
    title = f"# {folder.name}: SpikeBERT on {metrics.get('task', 'text classification')}"
    text = "\n".join([header(config, metrics, language), title, "", *_made(config, metrics, stages),
                      *_results(config, metrics, energy), *_usage(config)])
    path = folder / CARD
    atomic_write_text(path, text)
    return path


def push_to_hub(folder, repo_id: str, private: bool = False, api=None) -> str:
    """Upload a model folder (weights, config, tokenizer, card) to the Hugging Face Hub as
    ``repo_id``; needs a network and a token (``huggingface-cli login``). Training state
    (``checkpoints/``) and logs stay local. Returns the repository's URL."""
    from huggingface_hub import HfApi

    from spikebert.errors import SpikeBertError

    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / CARD).is_file():
        raise SpikeBertError(f"{folder}: not a published model folder (config.json and {CARD} are needed)")
    api = api or HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="spikebert: upload model",
                          ignore_patterns=UPLOAD_IGNORE)
    except Exception as e:  # no network, no token, no rights: one line
        raise SpikeBertError(f"push to {repo_id} failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}") from None
    return str(url)


# what stays on the machine when a folder is pushed
UPLOAD_IGNORE = ["checkpoints/*", "checkpoints/**", "log.jsonl", "*.tmp", ".*"]
