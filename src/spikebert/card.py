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

from spikebert.errors import SpikeBertError, first_line
from spikebert.folders import is_spikebert
from spikebert.training.checkpoint import atomic_write_text

CARD = "README.md"
KINDS = {"stage2": "a spiking Transformer (SpikeBERT) distilled from a fine-tuned teacher",
         "direct": "a spiking Transformer (SpikeBERT) trained on labels alone (no teacher)",
         "stage1": "a spiking Transformer (SpikeBERT) after pre-distillation only (no task head yet)",
         "teacher": "the fine-tuned teacher (an ANN) of a SpikeBERT student"}


def _pct(x) -> str:
    """A fraction as a percentage with two decimals (``–`` for None)."""
    return "–" if x is None else f"{x * 100:.2f} %"


def _yaml_list(key: str, values) -> list[str]:
    """A YAML list under ``key`` (nothing when no value is set)."""
    values = [v for v in values if v]
    return [f"{key}:", *[f"- {json.dumps(str(v), ensure_ascii=False)}" for v in values]] if values else []


def _hub_dataset(task) -> str | None:
    """The Hub dataset a model was trained on: a paper task's public copy (``SetFit/sst5``), a hub
    dataset's own name; None for the user's own files (their name is no Hub dataset)."""
    from spikebert.data.tasks import TASKS

    if task in TASKS:
        return TASKS[task].hub[0] if TASKS[task].hub else None
    return task if task and "/" in str(task) else None


def header(config: dict, metrics: dict, language: str | None) -> str:
    """The YAML header the Hub reads: library, tags, language, datasets, metrics (and the base
    model when the teacher is a hub name)."""
    spiking = is_spikebert(config)
    tags = ["text-classification", "knowledge-distillation"]
    tags += ["spiking-neural-network", "snn", "spikebert"] if spiking else ["spikebert-teacher"]
    lines = ["---", "library_name: spikebert" if spiking else "library_name: transformers",
             "pipeline_tag: text-classification", *_yaml_list("tags", tags),
             *_yaml_list("language", [language]), *_yaml_list("datasets", [_hub_dataset(metrics.get("task"))]),
             *_yaml_list("metrics", ["accuracy", "f1"])]
    teacher = metrics.get("teacher")
    if teacher and not Path(str(teacher)).exists() and "/" in str(teacher):
        lines.append(f"base_model: {teacher}")  # a hub name, not a local folder
    return "\n".join([*lines, "---", ""])


def _neuron(config: dict) -> str:
    """The card's name of a student's neuron: ``LIF``, ``int LIF (D = 4)``, ``bispike LIF``."""
    neuron, levels = config.get("neuron", "lif"), config.get("spike_levels")
    return "LIF" if neuron == "lif" else f"{neuron} LIF" + (f" (D = {levels})" if levels else "")


def _made(config: dict, metrics: dict, stages: dict | None) -> list[str]:
    """The card's "How it was made": kind, student shape, teacher, stage 1, data sizes, settings, stage times."""
    kind = metrics.get("kind", "")
    out = ["## How it was made", "", f"This is {KINDS.get(kind, 'a model saved by spikebert')}."]
    if is_spikebert(config):
        depth = config.get("num_hidden_layers")
        out.append(f"Student: {depth} block{'' if depth == 1 else 's'} × {config.get('hidden_size')} wide, "
                   f"{config.get('num_attention_heads')} heads, T = {config.get('time_steps')} time steps, "
                   f"{_neuron(config)} τ = {config.get('tau')}, threshold {config.get('threshold')}, input encoding "
                   f"`{config.get('input_encoding', 'real')}`.")
    if metrics.get("teacher"):
        out.append(f"{'Fine-tuned from' if kind == 'teacher' else 'Teacher'}: `{metrics['teacher']}`.")
    if metrics.get("init"):
        out.append(f"Stage 1 (pre-distillation) student: `{metrics['init']}`.")
    train_what = "training texts" + (" (augmented ones included)" if metrics.get("augmented_texts") else "")
    sizes = [f"{metrics[k]:,} {what}" for k, what in (("train_examples", train_what),
                                                       ("augmented_texts", "of them augmented"),
                                                       ("dev_examples", "dev texts")) if metrics.get(k) is not None]
    if sizes:
        out.append("Data: " + ", ".join(sizes) + ".")
    settings = {"distillation": metrics["distillation"]} if metrics.get("distillation") else {}
    args = metrics.get("args") or {}
    settings.update({k: args[k] for k in ("lr", "batch_size", "epochs", "seed") if k in args})
    if settings:
        out += ["", "Settings:", "", "```json", json.dumps(settings, indent=1, ensure_ascii=False), "```"]
    if stages:
        out += ["", "| stage | minutes | dev accuracy |", "|---|---|---|"]
        out += [f"| {name} | {(s.get('seconds') or 0) / 60:.1f} | {_pct(s.get('dev_accuracy'))} |"
                for name, s in stages.items()]
    return out + [""]


def _rate_table(energy: dict) -> list[str]:
    """Firing rates, a row per layer (``embed``, ``layer0``...) and a column per neuron group, both
    in the order the model declares its groups (``group_firing_rates``; the nested
    ``firing_rates`` of an older report keeps that order too)."""
    from spikebert.analysis.energy import split_group

    rows: dict[str, dict[str, float]] = {}
    if energy.get("group_firing_rates"):
        for name, rate in energy["group_firing_rates"].items():
            row, group = split_group(name)
            rows.setdefault(row, {})[group] = rate
    else:
        rows = energy.get("firing_rates") or {}
    groups = list(dict.fromkeys(g for layer in rows.values() for g in layer))
    if not groups:
        return []
    out = ["", "| layer | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    return out + [f"| {name} | " + " | ".join(f"{layer[g] * 100:.1f} %" if g in layer else "–" for g in groups) + " |"
                  for name, layer in rows.items()]


def _results(config: dict, metrics: dict, energy: dict | None) -> list[str]:
    """The card's "Results": dev accuracy and macro-F1, energy, firing rates, the label names."""
    out = ["## Results", ""]
    if metrics.get("dev_accuracy") is not None:
        out.append(f"Dev accuracy **{_pct(metrics['dev_accuracy'])}**, macro-F1 {_pct(metrics.get('dev_macro_f1'))} "
                   f"({metrics.get('dev_examples', '?')} dev texts; the model was selected on this dev set).")
    if energy:
        out.append(f"Estimated energy per sentence: {energy['snn_energy_mj']:.3f} mJ against its teacher's "
                   f"{energy['ann_energy_mj']:.3f} mJ, **{energy['energy_ratio'] * 100:.1f} %** "
                   f"(0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate, operations counted at the measured "
                   f"firing rates); mean firing rate {energy['firing_rate'] * 100:.1f} %.")
        out += _rate_table(energy)
    labels = config.get("id2label") or {}
    if labels:
        out += ["", "Labels: " + ", ".join(f"`{labels[k]}`" for k in sorted(labels, key=int)) + "."]
    return out + [""]


def _usage(config: dict) -> list[str]:
    """The card's "How to use": transformers' pipeline, the command line, firing rates and energy."""
    lines = ["## How to use", "", "```python", "import spikebert  # registers the model with transformers",
             "from transformers import pipeline", "", 'clf = pipeline("text-classification", model="PATH")',
             'print(clf("a text to classify"))', "```", "",
             "or `spikebert predict --model PATH \"a text to classify\"`."]
    if is_spikebert(config):
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
    what = "SpikeBERT" if is_spikebert(config) else "the teacher of a SpikeBERT student"
    title = f"# {folder.name}: {what} on {metrics.get('task', 'text classification')}"
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

    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / CARD).is_file():
        raise SpikeBertError(f"{folder}: not a published model folder (config.json and {CARD} are needed)")
    api = api or HfApi()
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="spikebert: upload model",
                          ignore_patterns=UPLOAD_IGNORE)
    except Exception as e:  # no network, no token, no rights: one line
        raise SpikeBertError(f"push to {repo_id} failed: {first_line(e)}") from None
    return str(url)


# what stays on the machine when a folder is pushed
UPLOAD_IGNORE = ["checkpoints/*", "checkpoints/**", "log.jsonl", "*.tmp", ".*"]
