"""``spikebert report`` (one HTML page about a SpikeBERT model) and ``spikebert push`` (a model
folder to the Hugging Face Hub)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from spikebert.analysis.report import ENERGY_TEXTS, RASTER_TEXTS
from spikebert.cli import app
from spikebert.cli.options import DataDir, DevFile, LabelColumn, Model, Private, Task, TextColumn
from spikebert.errors import SpikeBertError

PageOutput = Annotated[Optional[str], typer.Option(
    "--output", "-o", help="the page to write (default: <model>/report.html)")]
EnergyTexts = Annotated[int, typer.Option(
    "--energy-texts", min=1, help="dev texts the energy is measured on when no energy report of the model is found")]
Rasters = Annotated[int, typer.Option("--rasters", min=0, help="dev sentences whose spike rasters the page shows")]
ReportMaxLength = Annotated[Optional[int], typer.Option(
    "--max-length", help="truncate texts to this many tokens (default: the model's training length)")]
Repo = Annotated[str, typer.Option("--repo", help="the Hub repository, owner/name")]


def _model_labels(model: str) -> tuple[str, ...]:
    """The class names of a SpikeBERT model folder, in class order (another model is refused)."""
    from spikebert.folders import check_model_folder, is_spikebert

    config = check_model_folder(model)
    if not is_spikebert(config):
        raise SpikeBertError(f"{model}: a {config['model_type']} model has no spiking neurons; "
                             "the report needs a SpikeBERT model")
    id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
    return tuple(str(id2label.get(i, i)) for i in range(len(id2label)))


def _recorded_dev(model: str, task: str | None, data_dir):
    """The dev split the model was selected on: its task's (``metrics.json``), or an own-data
    run's, read again from the ``data.json`` beside the model's folder."""
    from spikebert.analysis.report import read_metrics
    from spikebert.data.tasks import TASKS, load_data, splits_from_record

    if task is not None:
        return load_data(task, "dev", data_dir)
    recorded = (read_metrics(model) or {}).get("task")
    own = Path(model).parent / "data.json"
    if recorded in TASKS:
        return load_data(recorded, "dev", data_dir)
    if own.is_file():
        return splits_from_record(json.loads(own.read_text(encoding="utf-8"))).dev
    raise SpikeBertError(f"{model}: trained on {recorded or 'unrecorded data'}, which is no known task and has no "
                         "data.json beside it: give --dev-file FILE (or --task NAME)")


def report_dev(model: str, task, data_dir, dev_file, text_column: str, label_column: str):
    """The dev data of ``report``: ``--dev-file`` (in ``--task``'s format, or a user file with the
    model's classes), ``--task``'s dev split, or the model's own (:func:`_recorded_dev`)."""
    from spikebert.data.tasks import TaskData, load_data, read_user_file

    labels = _model_labels(model)
    if dev_file and task:
        dev = load_data(task, file=dev_file)
    elif dev_file:
        exs, _ = read_user_file(Path(dev_file), text_column, label_column, labels, classes_of=f"the model {model}")
        dev = TaskData(Path(dev_file).stem, labels, "en", exs, str(dev_file))
    else:
        dev = _recorded_dev(model, task, data_dir)
    if len(dev.labels) != len(labels):
        raise SpikeBertError(f"{model}: the model has {len(labels)} classes, {dev.source} has {len(dev.labels)}")
    return dev


@app.command("report")
def report_cmd(model: Model, task: Task = None, data_dir: DataDir = None, dev_file: DevFile = None,
               text_column: TextColumn = "text", label_column: LabelColumn = "label", output: PageOutput = None,
               energy_texts: EnergyTexts = ENERGY_TEXTS, rasters: Rasters = RASTER_TEXTS,
               max_length: ReportMaxLength = None):
    """One self-contained HTML page about a SpikeBERT model: training curves of every stage, dev
    confusion matrix, energy against the teacher, firing rates and spike rasters. Dev is the
    model's own (its task, or its run's own data) unless --task or --dev-file says otherwise; the
    energy is the run's report when one is found, else measured on --energy-texts dev texts."""
    from spikebert.analysis.report import model_report, read_metrics

    dev = report_dev(model, task, data_dir, dev_file, text_column, label_column)
    metrics = read_metrics(model) or {}
    own_dev = dev_file is None and task in (None, metrics.get("task"))
    teacher = read_metrics(metrics["teacher"]) if own_dev and isinstance(metrics.get("teacher"), str) else None
    page = model_report(model, dev, Path(output) if output else Path(model) / "report.html",
                        teacher_accuracy=(teacher or {}).get("dev_accuracy"), max_length=max_length,
                        energy_texts=energy_texts, rasters=rasters)
    print(f"report of {model} on {dev.source} ({len(dev.examples)} dev examples) -> {page}")


@app.command("push")
def push_cmd(model: Model, repo: Repo, private: Private = False):
    """Upload a model folder (weights, config, tokenizer, model card) to the Hugging Face Hub; its
    training state stays here. A folder without a model card gets one first. Needs a network and
    a token (huggingface-cli login)."""
    from spikebert.card import CARD, push_to_hub, write_model_card
    from spikebert.folders import check_model_folder

    check_model_folder(model)
    if not (Path(model) / CARD).is_file():
        print(f"model card -> {write_model_card(model)}")
    print(f"pushed {model} -> {push_to_hub(model, repo, private=private)}")
