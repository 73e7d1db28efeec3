"""Options shared by several commands: same flag, same meaning, everywhere."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from spikebert.training.checkpoint import KEEP_CHECKPOINTS
from spikebert.neurons.multilevel import SPIKE_LEVELS

Task = Annotated[Optional[str], typer.Option("--task", help="sst2, sst5, mr, subj, chnsenti, waimai, or a hub dataset owner/name")]
DataDir = Annotated[Optional[str], typer.Option("--data-dir", help="folder with the task data (default: $SPIKEBERT_DATA)")]
File = Annotated[Optional[str], typer.Option("--file", help="read this file instead (in the task's format with --task; CSV/TSV/JSONL otherwise)")]
Split = Annotated[str, typer.Option("--split", help="train or dev")]
TextColumn = Annotated[str, typer.Option("--text-column", help="text column of a CSV/TSV/JSONL file")]
LabelColumn = Annotated[str, typer.Option("--label-column", help="label column of a CSV/TSV/JSONL file")]
Output = Annotated[str, typer.Option("--output", "-o", help="output folder")]
DevFile = Annotated[Optional[str], typer.Option(
    "--dev-file", help="labelled dev file (default: a seeded, stratified 10 % cut of the training file)")]
Private = Annotated[bool, typer.Option("--private", help="make the Hub repository private")]
Seed = Annotated[int, typer.Option("--seed", help="random seed")]
Epochs = Annotated[Optional[float], typer.Option("--epochs", help="training epochs")]
MaxSteps = Annotated[Optional[int], typer.Option("--max-steps", help="stop after this many optimiser steps")]
MaxMinutes = Annotated[Optional[float], typer.Option("--max-minutes", help="stop after this many minutes")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help="batch size (over all processes)")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="peak learning rate")]
MaxLength = Annotated[int, typer.Option("--max-length", help="truncate texts to this many tokens")]
Limit = Annotated[Optional[int], typer.Option("--limit", help="use only the first N training examples")]
Resume = Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint in --output")]
Json = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]
Model = Annotated[str, typer.Option("--model", help="a model folder saved by spikebert")]
Depth = Annotated[Optional[int], typer.Option("--depth", help="student blocks")]
Width = Annotated[Optional[int], typer.Option("--width", help="student width")]
Heads = Annotated[Optional[int], typer.Option("--heads", help="student attention heads")]
TimeSteps = Annotated[Optional[int], typer.Option("--time-steps", "-T", min=1, help="time steps T")]
Tau = Annotated[Optional[float], typer.Option("--tau", help="LIF membrane time constant (> 1)")]
Threshold = Annotated[Optional[float], typer.Option("--threshold", help="LIF firing threshold")]
Positions = Annotated[Optional[bool], typer.Option("--positions/--no-positions", help="learned position embeddings (starting from the teacher's, when there is one)")]
InputEncoding = Annotated[Optional[str], typer.Option(
    "--input-encoding", help="how tokens enter the spiking blocks: real (the embedding), spike (its Heaviside) or neuron "
    "(its LayerNorm driving a neuron over T: spikes that vary over time)")]
Neuron = Annotated[Optional[str], typer.Option(
    "--neuron", help="the spiking neuron: lif (default), if, int (integer spike counts 0..D a step) or bispike "
    "(spikes -1, 0, +1 times a learned amplitude); docs/neurons.md")]
SpikeLevels = Annotated[Optional[int], typer.Option(
    "--spike-levels", help=f"D, the most spikes an int neuron emits in a step (>= 1; default {SPIKE_LEVELS})")]
SaveEvery = Annotated[Optional[int], typer.Option("--save-every", help="checkpoint every N steps (also at each epoch end)")]
KeepCheckpoints = Annotated[Optional[int], typer.Option(
    "--keep-checkpoints", min=1, help="keep the newest N checkpoints; a damaged one falls back to the one before "
                                      f"(default {KEEP_CHECKPOINTS})")]


# context settings of a command whose --corpus takes all the files a shell glob gives
MANY_FILES = {"allow_extra_args": True}


def corpus_files(ctx: typer.Context, corpus: list[str] | None) -> list[str] | None:
    """``--corpus a.txt b.txt`` (what ``--corpus dir/*.txt`` becomes in a shell) as well as
    ``--corpus a.txt --corpus b.txt``: the words click leaves over are more corpus files. Such words
    with no ``--corpus`` at all are a usage error, as they are in every other command."""
    if ctx.args and not corpus:
        ctx.fail(f"Got unexpected extra argument(s) ({' '.join(ctx.args)})")
    return [*(corpus or []), *ctx.args] or None


# the loss weights of distillation: flags of `distill task` (and --w-spikes, --w-energy of `distill
# pretrain` and `run`); their defaults are LossWeights' (spikebert.distill.config), given where the option is used
WCe = Annotated[float, typer.Option("--w-ce", help="weight of the cross-entropy with the labels")]
WKl = Annotated[float, typer.Option("--w-kl", help="weight of the KL term to the teacher's soft labels")]
WRep = Annotated[float, typer.Option("--w-rep", help="weight of the feature MSE of the matched layers")]
WEmb = Annotated[float, typer.Option("--w-emb", help="weight of the embedding MSE")]
Temperature = Annotated[float, typer.Option("--temperature", help="softmax temperature of the KL term")]
WSpikes = Annotated[float, typer.Option(
    "--w-spikes", help="weight of a penalty on the student's mean firing rate (fewer spikes, less energy)")]
WEnergy = Annotated[float, typer.Option(
    "--w-energy", help="weight of a penalty on the student's estimated energy as a fraction of its teacher's "
    "(strict rule: each group's spikes weighted by the operations they drive)")]
Augment = Annotated[int, typer.Option("--augment", help="augmented copies per sentence (0: none)")]

# passing the teacher through (docs/teacher-transfer.md): weight inheritance, attention maps, a second file
WAttn = Annotated[float, typer.Option(
    "--w-attn", help="weight of attention distillation: the student's per-head attention maps (Q·Kᵀ, mean over T) "
    "to the teacher's, in the matched layers (heads one to one)")]
InitFromTeacher = Annotated[bool, typer.Option(
    "--init-from-teacher", help="start the student's blocks from the teacher's layers (q, k, v, attention output, "
    "MLP, two LayerNorms) through the layer map; needs the teacher's width and heads")]
EvalFile = Annotated[Optional[str], typer.Option(
    "--eval-file", help="a second labelled file (the task's format, or your columns) whose accuracy is logged after "
    "every epoch (metrics.json: eval_file_by_epoch); never used to select anything")]
