"""A teacher where no pretrained BERT can be installed (Chinese): ``tokenizer train`` and
``teacher pretrain``.

    spikebert tokenizer train --corpus zh/*.txt --output tok-zh
    spikebert teacher pretrain --corpus zh/*.txt --tokenizer tok-zh --output bert-zh --max-minutes 60
    spikebert teacher finetune --task chnsenti --teacher bert-zh --output chnsenti-teacher
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from spikebert.cli import teacher_app, tokenizer_app
from spikebert.cli.options import (MANY_FILES, BatchSize, DataDir, Epochs, KeepCheckpoints, Lr, MaxLength, MaxMinutes,
                                   MaxSteps, Output, Resume, Seed, corpus_files)
from spikebert.cli.train_cmds import job_args
from spikebert.data.batching import MAX_LENGTH

Corpus = Annotated[Optional[list[str]], typer.Option("--corpus", help="text file(s), one text a line (UTF-8); several may follow one --corpus (dir/*.txt)")]
CorpusLimit = Annotated[Optional[int], typer.Option(
    "--limit", help="read only the first N corpus lines (over all files; task texts are added in full)")]
AddTaskTexts = Annotated[Optional[list[str]], typer.Option(
    "--add-task-texts", help="also use this task's TRAIN split texts as unlabelled text (never dev/test); repeatable")]


@tokenizer_app.command("train", context_settings=MANY_FILES)
def tokenizer_train(ctx: typer.Context, output: Output, corpus: Corpus = None, vocab_size: int = typer.Option(
        None, "--vocab-size", help="vocabulary size (default 8000: every character of the zh corpora plus "
                                   "~2.7k Latin/number pieces)"),
        limit: CorpusLimit = None, lowercase: bool = typer.Option(True, "--lowercase/--no-lowercase",
                                                                  help="lowercase (and strip accents) before splitting"),
        add_task_texts: AddTaskTexts = None, data_dir: DataDir = None):
    """Train a BERT WordPiece tokenizer (CJK split into characters) and save it as a transformers folder."""
    from spikebert.teachers.pretrain import pretraining_texts
    from spikebert.teachers.wordpiece import DEFAULT_VOCAB_SIZE, train_tokenizer

    corpus = corpus_files(ctx, corpus)
    texts, sources = pretraining_texts(corpus, limit, add_task_texts, data_dir)
    info = train_tokenizer(texts, output, vocab_size or DEFAULT_VOCAB_SIZE, lowercase,
                           sources=[str(c) for c in corpus or []] + [f"task:{t}/train" for t in add_task_texts or []])
    print(f"tokenizer: {info['vocab_size']} pieces ({info['single_characters']} single characters) "
          f"from {info['texts']} texts, {info['seconds']:.1f} s -> {output}")


@teacher_app.command("pretrain", context_settings=MANY_FILES)
def teacher_pretrain(ctx: typer.Context, output: Output, corpus: Corpus = None, tokenizer: str = typer.Option(
        None, "--tokenizer", help="tokenizer folder from `spikebert tokenizer train` (default: train one on the "
                                  "same texts into OUTPUT/tokenizer)"),
        layers: int = typer.Option(None, "--layers", help="encoder layers (default 4)"),
        hidden: int = typer.Option(None, "--hidden", help="width (default 256)"),
        heads: int = typer.Option(None, "--heads", help="attention heads (default 4)"),
        intermediate: int = typer.Option(None, "--intermediate", help="feed-forward width (default 4 × --hidden)"),
        eval_texts: int = typer.Option(512, "--eval-texts", help="held-out texts for the masked-LM loss "
                                                                 "(at most a tenth of the corpus; 0: none)"),
        add_task_texts: AddTaskTexts = None, data_dir: DataDir = None, seed: Seed = 42, epochs: Epochs = None,
        max_steps: MaxSteps = None, max_minutes: MaxMinutes = None, batch_size: BatchSize = None, lr: Lr = None,
        max_length: MaxLength = MAX_LENGTH, limit: CorpusLimit = None, resume: Resume = False,
        keep_checkpoints: KeepCheckpoints = None):
    """Pre-train a small BERT from scratch with masked-LM on a corpus; fine-tune it with `teacher finetune`."""
    flags = dict(locals())  # the command's flags
    from spikebert.teachers.pretrain import PRETRAIN_DEFAULTS, pretrain_teacher, pretraining_texts

    corpus = corpus_files(ctx, corpus)
    texts, sources = pretraining_texts(corpus, limit, add_task_texts, data_dir)
    if tokenizer is None:
        tokenizer = str(Path(output) / "tokenizer")
        if not (Path(tokenizer) / "tokenizer_config.json").exists():
            from spikebert.teachers.wordpiece import train_tokenizer

            info = train_tokenizer(texts, tokenizer, sources=sources.get("corpus", []) + [
                f"task:{t}/train" for t in sources.get("task_train_texts", {})])
            print(f"tokenizer: {info['vocab_size']} pieces trained on the same texts -> {tokenizer}")
    args = job_args(PRETRAIN_DEFAULTS, flags)
    shape = dict(layers=layers, hidden=hidden, heads=heads, intermediate=intermediate)
    m = pretrain_teacher(texts, tokenizer, args, shape, max_length, eval_texts, sources)
    if m["heldout_loss"] is not None:
        held = (f"held-out MLM loss {m['heldout_loss_at_start']:.3f} -> {m['heldout_loss']:.3f} "
                f"(masked-token accuracy {m['heldout_mlm_accuracy'] * 100:.1f}%)")
    elif m["final_train_loss"] is not None:
        held = f"final training loss {m['final_train_loss']:.3f}"
    else:
        held = "no step run"
    print(f"teacher pretrain: {m['steps']} steps on {m['train_texts']} texts, {held}, "
          f"{m['seconds'] / 60:.1f} min -> {output}")
