"""Training and evaluation commands: ``teacher finetune``, ``evaluate``, ``distill pretrain``,
``distill task``, ``train-direct`` and ``run``."""

from __future__ import annotations

import json

import typer

from spikebert.data.tasks import load_data
from spikebert.training.trainer import TrainArgs
from spikebert.cli import app, teacher_app
from spikebert.cli.options import (MANY_FILES, BatchSize, DataDir, Epochs, File, Json, LabelColumn, Limit, Lr, MaxLength,
                      MaxMinutes, MaxSteps, Model, Output, Resume, SaveEvery, Seed, Split, Task, TextColumn, TimeSteps,
                      corpus_files)


def train_args(output, seed, epochs, max_steps, max_minutes, batch_size, lr, resume, defaults: dict,
               save_every=None) -> TrainArgs:
    """Command-line values over the command's defaults."""
    given = dict(output=output, seed=seed, epochs=epochs, max_steps=max_steps, max_minutes=max_minutes,
                 batch_size=batch_size, lr=lr, resume=resume, save_every=save_every)
    merged = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    if max_steps is not None and epochs is None:
        merged["epochs"] = None  # as in transformers: --max-steps alone overrides the default epochs
    return TrainArgs(**merged)


def task_splits(task, data_dir, file, text_column, label_column, limit, dev_file=None):
    train = load_data(task, "train", data_dir, file, text_column, label_column, limit=limit)
    if file and not task:
        if not dev_file:
            from spikebert.data.tasks import stratified_split

            train.examples, dev_examples = stratified_split(train.examples)
            dev = load_data(task, "train", data_dir, file, text_column, label_column, labels=train.labels)
            dev.examples = dev_examples
            return train, dev
        return train, load_data(None, "dev", None, dev_file, text_column, label_column, labels=train.labels)
    return train, load_data(task, "dev", data_dir, dev_file)


@teacher_app.command("finetune")
def teacher_finetune(output: Output, task: Task = None, teacher: str = typer.Option(
        None, "--teacher", help="local BERT folder or hub name (default: the embedded MiniLM)"),
        data_dir: DataDir = None, file: File = None, dev_file: str = typer.Option(None, "--dev-file"),
        text_column: TextColumn = "text", label_column: LabelColumn = "label", seed: Seed = 42,
        epochs: Epochs = None, max_steps: MaxSteps = None, max_minutes: MaxMinutes = None,
        batch_size: BatchSize = None, lr: Lr = None, max_length: MaxLength = 128, limit: Limit = None,
        resume: Resume = False, save_every: SaveEvery = None):
    """Fine-tune a BERT-family teacher on a task; the best epoch on dev is kept."""
    from spikebert.teachers.finetune import TEACHER_DEFAULTS, finetune_teacher

    train, dev = task_splits(task, data_dir, file, text_column, label_column, limit, dev_file)
    args = train_args(output, seed, epochs, max_steps, max_minutes, batch_size, lr, resume, TEACHER_DEFAULTS, save_every)
    m = finetune_teacher(train, dev, args, teacher, max_length)
    print(f"teacher: dev accuracy {m['dev_accuracy'] * 100:.2f}% (step {m['best_step']}), "
          f"{m['seconds'] / 60:.1f} min -> {output}")


@app.command("evaluate")
def evaluate(model: Model, task: Task = None, split: Split = "dev", data_dir: DataDir = None, file: File = None,
             text_column: TextColumn = "text", label_column: LabelColumn = "label", max_length: MaxLength = 128,
             batch_size: BatchSize = 64, json_out: Json = False, time_steps: TimeSteps = None):
    """Accuracy, macro-F1, per-class counts and the confusion matrix of any saved model. A
    SpikeBERT model runs at its own T unless --time-steps says otherwise (T owns no weights)."""
    from spikebert.data.batching import encode_examples
    from spikebert.errors import SpikeBertError
    from spikebert.training.metrics import evaluate_dataset, format_report
    from spikebert.folders import load_classifier

    data = load_data(task, split, data_dir, file, text_column, label_column) if task else None
    clf, tokenizer = load_classifier(model, time_steps=time_steps)
    if data is None:  # a user file: its labels are the model's classes
        labels = tuple(clf.config.id2label[i] for i in range(clf.config.num_labels))
        data = load_data(None, split, data_dir, file, text_column, label_column, labels=labels)
    if len(data.labels) != clf.config.num_labels:
        raise SpikeBertError(f"{model}: the model has {clf.config.num_labels} classes, {data.name} has {len(data.labels)}")
    ds = encode_examples(tokenizer, data.examples, max_length)
    m = evaluate_dataset(clf, ds, data.labels, batch_size, progress=not json_out)
    m.update(model=model, data=data.source, kind=clf.config.model_type)
    if clf.config.model_type == "spikebert":
        m["time_steps"] = clf.config.time_steps
    if json_out:
        print(json.dumps(m, ensure_ascii=False))
    else:
        print(f"{model} ({clf.config.model_type}) on {data.source}")
        print(format_report(m))


# ---------------------------------------------------------------------------------------------
# Distillation and direct training

from spikebert.cli import distill_app  # noqa: E402
from spikebert.cli.options import Depth, Heads, Positions, Tau, Threshold, Width  # noqa: E402

TeacherOpt = typer.Option(None, "--teacher", help="BERT teacher: a folder or hub name (default: the embedded MiniLM)")
LayerMapOpt = typer.Option(None, "--layer-map", help="student:teacher layer pairs, e.g. 1:2,2:4 (default: uniform)")


def shape_of(depth, width, heads, time_steps, tau, threshold, position_embeddings=None) -> dict:
    """The student-shape flags as SpikeBertConfig fields (unset flags left out)."""
    shape = dict(num_hidden_layers=depth, hidden_size=width, num_attention_heads=heads, time_steps=time_steps,
                 tau=tau, threshold=threshold, position_embeddings=position_embeddings)
    return {k: v for k, v in shape.items() if v is not None}


@distill_app.command("pretrain", context_settings=MANY_FILES)
def distill_pretrain(ctx: typer.Context, output: Output, corpus: list[str] = typer.Option(
                         ..., "--corpus", help="text file(s), one text a line; several may follow one --corpus (dir/*.txt)"),
                     teacher: str = TeacherOpt, layer_map: str = LayerMapOpt, seed: Seed = 42, epochs: Epochs = None,
                     max_steps: MaxSteps = None, max_minutes: MaxMinutes = None, batch_size: BatchSize = None,
                     lr: Lr = None, max_length: MaxLength = 128, limit: Limit = None, resume: Resume = False,
                     depth: Depth = None, width: Width = None, heads: Heads = None, time_steps: TimeSteps = None,
                     tau: Tau = None, threshold: Threshold = None,
                     positions: Positions = None, save_every: SaveEvery = None,
                     sample: bool = typer.Option(False, "--sample", help="with --limit: a random sample (by --seed) "
                                                 "of all the lines, as `spikebert run` takes, not the first N")):
    """Stage 1: the student learns the teacher's hidden states on unlabelled text."""
    from spikebert.distill.stages import STAGE1_DEFAULTS, pretrain_distill

    args = train_args(output, seed, epochs, max_steps, max_minutes, batch_size, lr, resume, STAGE1_DEFAULTS, save_every)
    m = pretrain_distill(teacher, corpus_files(ctx, corpus), args,
                         shape_of(depth, width, heads, time_steps, tau, threshold, positions), max_length, layer_map,
                         limit, shuffle_seed=seed if sample else None)
    print(f"stage 1: {m['steps']} steps on {m['texts']} texts, final loss {m['final_loss']:.4f}, "
          f"{m['seconds'] / 60:.1f} min -> {output}")


@distill_app.command("task")
def distill_task(output: Output, teacher: str = typer.Option(..., "--teacher", help="the fine-tuned teacher folder"),
                 task: Task = None, init: str = typer.Option(None, "--init", help="stage-1 student folder"),
                 data_dir: DataDir = None, file: File = None, dev_file: str = typer.Option(None, "--dev-file"),
                 text_column: TextColumn = "text", label_column: LabelColumn = "label",
                 augment: int = typer.Option(None, "--augment", help="augmented copies per sentence"),
                 w_ce: float = typer.Option(0.1, "--w-ce"), w_kl: float = typer.Option(1.0, "--w-kl"),
                 w_rep: float = typer.Option(0.1, "--w-rep"), w_emb: float = typer.Option(0.1, "--w-emb"),
                 temperature: float = typer.Option(1.0, "--temperature"), layer_map: str = LayerMapOpt,
                 seed: Seed = 42, epochs: Epochs = None, max_steps: MaxSteps = None, max_minutes: MaxMinutes = None,
                 batch_size: BatchSize = None, lr: Lr = None, max_length: MaxLength = 128, limit: Limit = None,
                 resume: Resume = False, depth: Depth = None, width: Width = None, heads: Heads = None,
                 time_steps: TimeSteps = None, tau: Tau = None, threshold: Threshold = None,
                 save_every: SaveEvery = None):
    """Stage 2: distil a fine-tuned teacher into the student on the task (plus augmented texts)."""
    from spikebert.distill.augment import AugmentConfig
    from spikebert.distill.losses import LossWeights
    from spikebert.distill.stages import STAGE2_DEFAULTS, task_distill
    from spikebert.pipeline import DEFAULT_AUGMENT

    train, dev = task_splits(task, data_dir, file, text_column, label_column, limit, dev_file)
    args = train_args(output, seed, epochs, max_steps, max_minutes, batch_size, lr, resume, STAGE2_DEFAULTS, save_every)
    copies = DEFAULT_AUGMENT if augment is None else augment
    m = task_distill(train, dev, teacher, args, init, LossWeights(w_ce, w_kl, w_rep, w_emb, temperature),
                     AugmentConfig(copies=copies, seed=seed), shape_of(depth, width, heads, time_steps, tau, threshold),
                     max_length, layer_map)
    print(f"stage 2: dev accuracy {m['dev_accuracy'] * 100:.2f}% (step {m['best_step']}), "
          f"{m['seconds'] / 60:.1f} min -> {output}")


@app.command("train-direct")
def train_direct_cmd(output: Output, task: Task = None, tokenizer_from: str = typer.Option(
        None, "--tokenizer-from", help="take the tokenizer (vocabulary) of this BERT (default: the embedded MiniLM)"),
        data_dir: DataDir = None, file: File = None, dev_file: str = typer.Option(None, "--dev-file"),
        text_column: TextColumn = "text", label_column: LabelColumn = "label", seed: Seed = 42,
        epochs: Epochs = None, max_steps: MaxSteps = None, max_minutes: MaxMinutes = None,
        batch_size: BatchSize = None, lr: Lr = None, max_length: MaxLength = 128, limit: Limit = None,
        resume: Resume = False, depth: Depth = None, width: Width = None, heads: Heads = None,
        time_steps: TimeSteps = None, tau: Tau = None, threshold: Threshold = None, save_every: SaveEvery = None,
        positions: Positions = None):
    """Baseline: the same student trained on labels alone (the paper's directly-trained Spikformer)."""
    from spikebert.distill.stages import DIRECT_DEFAULTS, train_direct

    train, dev = task_splits(task, data_dir, file, text_column, label_column, limit, dev_file)
    args = train_args(output, seed, epochs, max_steps, max_minutes, batch_size, lr, resume, DIRECT_DEFAULTS, save_every)
    m = train_direct(train, dev, args, tokenizer_from,
                     shape_of(depth, width, heads, time_steps, tau, threshold, positions), max_length)
    print(f"direct: dev accuracy {m['dev_accuracy'] * 100:.2f}% (step {m['best_step']}), "
          f"{m['seconds'] / 60:.1f} min -> {output}")


@app.command("run", context_settings=MANY_FILES)
def run_cmd(ctx: typer.Context, task: str = typer.Option(..., "--task", help="the task to run the whole method on"),
            workdir: str = typer.Option("runs", "--workdir", help="where every stage's folder goes"),
            preset: str = typer.Option("cpu", "--preset", help="cpu (default, 2-core machine), paper (GPU scale), tiny (smoke test)"),
            teacher: str = TeacherOpt, corpus: list[str] = typer.Option(None, "--corpus", help="stage-1 corpus file(s) (default: $SPIKEBERT_CORPORA/<language>/*.txt)"),
            data_dir: DataDir = None, seed: Seed = 42, depth: Depth = None, width: Width = None, heads: Heads = None,
            time_steps: TimeSteps = None, tau: Tau = None, threshold: Threshold = None, positions: Positions = None,
            energy: bool = typer.Option(True, "--energy/--no-energy", help="finish with the energy report")):
    """The whole method: teacher fine-tuning, stage 1, stage 2, dev evaluation, energy. Stages
    already finished are reused; an interrupted one resumes. Shape flags that differ from the
    preset give the students folders of their own (runs/sst2/snn-T8)."""
    from spikebert.pipeline import run

    r = run(task, workdir, preset, teacher, corpus_files(ctx, corpus), data_dir, seed,
            shape_of(depth, width, heads, time_steps, tau, threshold, positions), energy)
    print(json.dumps(r, indent=2))
