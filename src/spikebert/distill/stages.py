"""The training jobs: stage 1 (pre-distillation), stage 2 (task distillation) and direct training.

Each job reads its inputs, builds the student and the trainable module, hands both to
:func:`spikebert.training.trainer.fit`, and publishes a model folder with ``metrics.json`` and ``log.jsonl``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from spikebert.data.batching import MAX_LENGTH, Encoded, encode_examples, tokenize
from spikebert.data.corpus import load_corpus
from spikebert.data.tasks import TaskData, label_fields
from spikebert.distill.augment import augment
from spikebert.distill.config import (DIRECT, STAGE1, TEACHER_CACHE, TEACHER_CACHE_DTYPE, DistillConfig,
                                      LayerMap, StudentShape)
from spikebert.distill.losses import (Distiller, FeatureAligner, embeddings_from_teacher, student_config,
                                      teacher_word_embeddings)
from spikebert.distill.teacher_cache import CachedTeacher, cached_teacher, teacher_fingerprint
from spikebert.distill.vocab import to_teacher_vocabulary
from spikebert.errors import SpikeBertError
from spikebert.folders import check_model_folder, is_spikebert, load_state_strict, load_tokenizer
from spikebert.modeling_spikebert import SpikeBertConfig, SpikeBertForSequenceClassification, resolve_spike_levels
from spikebert.neurons import has_levels
from spikebert.neurons.multilevel import AMPLITUDE
from spikebert.teachers.loading import load_teacher, load_teacher_config, resolve_teacher
from spikebert.training.checkpoint import check_output_dir, publish_model
from spikebert.training.metrics import dev_evaluator
from spikebert.training.plots import finish_job
from spikebert.training.trainer import TrainArgs, fit, last_logged, make_accelerator

# each job's training recipe where it differs from TrainArgs' defaults (AdamW 5e-4, batch 32, cosine
# schedule after 6 % warm-up, a checkpoint every 200 steps)
STAGE1_DEFAULTS = dict(epochs=1.0, warmup=0.05)
# two epochs: stage 2 peaks early and then over-fits a small training set (README, "Results")
STAGE2_DEFAULTS = dict(epochs=2.0)
DIRECT_DEFAULTS = dict(epochs=5.0)


def read_corpus(files: list[str], limit: int | None = None) -> list[str]:
    """One text a line, UTF-8, blank lines skipped, the first ``limit`` at most: in memory, for
    tokenizer training and teacher pre-training (stage 1 reads through :mod:`spikebert.data.corpus`)."""
    texts: list[str] = []
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise SpikeBertError(f"{p}: no such corpus file")
        with open(p, encoding="utf-8", errors="strict", newline="\n") as fh:
            try:
                for line in fh:
                    line = line.strip()
                    if line:
                        texts.append(line)
                        if limit is not None and len(texts) >= limit:
                            return texts
            except UnicodeDecodeError as e:
                raise SpikeBertError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start} of a chunk)") from None
    if not texts:
        raise SpikeBertError(f"{', '.join(map(str, files))}: the corpus holds no text")
    return texts


def pretrain_distill(*, teacher: str | None, corpus: list[str], args: TrainArgs, shape: StudentShape | None = None,
                     distill: DistillConfig | None = None, max_length: int = MAX_LENGTH, limit: int | None = None,
                     shuffle_seed: int | None = None) -> dict:
    """Stage 1: align the student's per-block features with the teacher's hidden states. Of
    ``distill``, stage 1 takes the layer map and the firing-rate weight (its loss is the feature
    MSE alone otherwise)."""
    distill = distill or DistillConfig()
    path = resolve_teacher(teacher)
    acc = make_accelerator(args.seed)
    teacher_model, tokenizer = load_teacher(path, head="encoder")
    teacher_model = teacher_model.to(acc.device).requires_grad_(False)
    config = student_config(teacher_model.config, shape)
    student = SpikeBertForSequenceClassification(config)
    embeddings_from_teacher(student, teacher_model)
    lmap = LayerMap.parse(distill.layer_map, config.num_hidden_layers, teacher_model.config.num_hidden_layers)
    data = load_corpus(corpus, tokenizer, max_length, limit, shuffle_seed)
    used = DistillConfig(weights=replace(STAGE1, spikes=distill.weights.spikes, energy=distill.weights.energy),
                         layer_map=distill.layer_map, augment=None)
    aligner = FeatureAligner(student, lmap, used.weights)

    def loss_fn(model, batch, step, epoch):
        with torch.no_grad():
            hidden = teacher_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   output_hidden_states=True).hidden_states
        return model(batch["input_ids"], batch["attention_mask"], hidden)

    def publish(model, _):
        publish_model(model.student, tokenizer, args.output)

    result = fit(aligner, data, args, loss_fn, None, publish, accelerator=acc, desc="stage 1")
    metrics = {"kind": "stage1", "teacher": path, "corpus": [str(c) for c in corpus], "texts": len(data),
               "sample_seed": shuffle_seed, "distillation": used.record(lmap), "steps": result.step,
               "stopped_by": result.stopped_by, "final_loss": last_logged(args.output),
               "seconds": round(result.seconds, 1), "student": config.to_diff_dict(),
               "shape": StudentShape.of_config(config).given(), "args": {**asdict(args), "max_length": max_length}}
    return finish_job(args.output, metrics, acc)


def load_student_init(init: str, labels: tuple[str, ...], shape: StudentShape | None = None):
    """A stage-1 student, loaded strictly: any missing or mismatched tensor but the classifier's is
    an error naming it; architecture fields of ``shape`` (depth, width, heads, positions, input
    encoding) that contradict the folder are an error too. T, tau and threshold own no weights:
    given, they replace stage 1's. So may the neuron and its levels, where the weights fit: a
    ``bispike`` neuron's amplitudes start at 1.0 when the stage-1 student has none."""
    from safetensors.torch import load_file

    folder_config = check_model_folder(init)
    if not is_spikebert(folder_config):
        raise SpikeBertError(f"{init}: --init must be a stage-1 SpikeBERT folder, not a {folder_config['model_type']}")
    config = SpikeBertConfig.from_pretrained(init)
    _apply_stage2_shape(config, shape or StudentShape(), init)
    config.update(label_fields(labels))
    student = SpikeBertForSequenceClassification(config)
    state = load_file(str(Path(init) / "model.safetensors"))
    fresh = {k: v for k, v in student.state_dict().items() if k.endswith(f".{AMPLITUDE}") and k not in state}
    load_state_strict(student, {**state, **fresh}, init)
    return student


def _apply_stage2_shape(config: SpikeBertConfig, shape: StudentShape, init: str) -> None:
    """Set the dynamics and the neuron ``shape`` gives on the stage-1 ``config``; refuse any other
    field it changes (``input_encoding`` too: a student reads its input one way), and a switch
    away from ``bispike`` (its learned amplitudes would be lost)."""
    have = StudentShape.of_config(config)
    given = shape.given()
    for name, value in given.items():
        old = getattr(have, name)
        if value == old:
            continue
        if name not in StudentShape.DYNAMICS + StudentShape.NEURON:
            raise SpikeBertError(f"{init}: the stage-1 student has {name}={old}, but {name}={value} was asked for; "
                                 f"{name} is part of its architecture: distil stage 1 with it, or leave it out")
        if name == "neuron" and old == "bispike":
            raise SpikeBertError(f"{init}: the stage-1 student has neuron=bispike, whose learned amplitudes a "
                                 f"{value} neuron has no place for: distil stage 1 with --neuron {value}, or keep bispike")
        tqdm.write(f"stage 2 sets {name}={value} (stage 1 had {old})")
        setattr(config, StudentShape.__dataclass_fields__[name].metadata["config"], value)
    if "spike_levels" not in given and not has_levels(config.neuron):
        config.spike_levels = None  # int → lif: the levels go with the neuron
    try:
        config.spike_levels = resolve_spike_levels(config.neuron, config.spike_levels)
    except ValueError as e:
        raise SpikeBertError(f"{init}: {e}") from None


def _train_parts(tokenizer, train: TaskData, augmented: list[str], max_length: int) -> tuple[Encoded, list[list[int]]]:
    """The task's texts with their labels, and the token ids of the augmented copies."""
    return encode_examples(tokenizer, train.examples, max_length), (tokenize(tokenizer, augmented, max_length)
                                                                    if augmented else [])


def _joined(base: Encoded, augmented_ids: list[list[int]]) -> Encoded:
    if not augmented_ids:
        return base
    return Encoded(base.input_ids + augmented_ids, base.labels + [-100] * len(augmented_ids), base.pad_token_id)


def _train_set(tokenizer, train: TaskData, augmented: list[str], max_length: int) -> Encoded:
    return _joined(*_train_parts(tokenizer, train, augmented, max_length))


def task_distill(train: TaskData, dev: TaskData, *, teacher: str, args: TrainArgs, init: str | None = None,
                 shape: StudentShape | None = None, distill: DistillConfig | None = None, max_length: int = MAX_LENGTH,
                 cache_dir: str | None = None, teacher_cache: bool = TEACHER_CACHE,
                 teacher_cache_dtype: str = TEACHER_CACHE_DTYPE) -> dict:
    """Stage 2: learn the task from a fine-tuned teacher (logits, hidden states, embeddings, labels),
    on the training set plus ``distill.augment``'s copies.

    ``cache_dir`` holds what is reused across runs: the augmented texts (default: the output
    folder) and, with ``teacher_cache``, the teacher's outputs over the training set and its copies
    (``teacher-outputs/``, default: the folder the output folder is in), computed once and read by
    every epoch, seed and student variant of the same teacher and data
    (:mod:`spikebert.distill.teacher_cache`); without room for them the teacher runs live."""
    distill = distill or DistillConfig()
    check_output_dir(args.output)  # before the augmentation cache is written into it
    acc = make_accelerator(args.seed)
    teacher_path = resolve_teacher(teacher)
    teacher_model, tokenizer = load_teacher(teacher_path, head="classifier", labels=train.labels)
    teacher_model = teacher_model.to(acc.device).requires_grad_(False)
    t_emb = teacher_word_embeddings(teacher_model)
    student, vocabulary = _stage2_student(teacher_model, tokenizer, teacher_path, train, init, shape)
    lmap = LayerMap.parse(distill.layer_map, student.config.num_hidden_layers, teacher_model.config.num_hidden_layers)
    cfg = distill.augment
    augmented = augment([ex.text for ex in train.examples], tokenizer, t_emb, cfg,
                        cache_dir or args.output) if cfg and cfg.copies > 0 else []
    base, augmented_ids = _train_parts(tokenizer, train, augmented, max_length)
    data = _joined(base, augmented_ids)
    dev_set = encode_examples(tokenizer, dev.examples, max_length)
    distiller = Distiller(student, distill.weights, lmap, t_emb)
    need_hidden = distill.weights.rep > 0
    cache, build = None, False
    if teacher_cache:
        # a run shorter than one epoch reads fewer texts than building the cache would: it only
        # uses a cache that is there already
        build = _planned_texts(args, len(data)) >= len(data)
        cache = _teacher_outputs(acc, teacher_model, teacher_path, [base.input_ids, augmented_ids], base.pad_token_id,
                                 tuple(t for _, t in lmap.pairs) if need_hidden else (),
                                 Path(cache_dir) if cache_dir else Path(args.output).resolve().parent, max_length,
                                 teacher_cache_dtype, build)
    if cache is not None:
        teacher_model = None  # every output it would give is in the cache

    def loss_fn(model, batch, step, epoch):
        if cache is not None:
            logits, hidden = cache(batch["index"], batch["input_ids"].shape[1], batch["input_ids"].device)
        else:
            with torch.no_grad():
                t = teacher_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  output_hidden_states=need_hidden)
            logits, hidden = t.logits, t.hidden_states if need_hidden else None
        return model(batch["input_ids"], batch["attention_mask"], batch["labels"], logits, hidden)

    return _fit_classifier("stage2", distiller, data, dev_set, train, dev, args, loss_fn, tokenizer, acc, {
        "teacher": teacher, "init": init, "init_moved": vocabulary, "distillation": distill.record(lmap),
        "augmented_texts": len(augmented),
        "max_length": max_length,
        "teacher_cache": cache.record() if cache is not None else {"used": False, "asked": teacher_cache, "why": (
            "not asked" if not teacher_cache else "a run shorter than one epoch, and no cache found" if not build
            else "no room on disk")}})


def _planned_texts(args: TrainArgs, n: int) -> int:
    """Texts a run will read (its planned steps × batch size; ``n`` when only a time budget bounds it)."""
    per_epoch = math.ceil(n / args.batch_size)
    steps = [s for s in (args.max_steps, math.ceil(args.epochs * per_epoch) if args.epochs else None) if s]
    return min(steps) * args.batch_size if steps else n


def _teacher_outputs(acc, teacher_model, teacher_path: str, parts, pad_token_id: int, layers, root: Path,
                     max_length: int, dtype: str, build: bool = True) -> CachedTeacher | None:
    """The cached teacher outputs of ``parts``: built by the main process (when ``build``), read
    by every process; None when they are not there and not built (the teacher then runs live)."""
    kwargs = dict(teacher_id=teacher_fingerprint(teacher_path), parts=parts, pad_token_id=pad_token_id,
                  layers=layers, root=root, max_length=max_length, dtype=dtype, log=tqdm.write)
    cache = cached_teacher(teacher_model, build=build, **kwargs) if acc.is_main_process else None
    acc.wait_for_everyone()
    if not acc.is_main_process:
        cache = cached_teacher(teacher_model, build=False, **kwargs)
    return cache


def _stage2_student(teacher_model, tokenizer, teacher_path: str, train: TaskData, init: str | None,
                    shape: StudentShape | None):
    """The stage-1 student (``init``), moved to this teacher's vocabulary and width when stage 1
    learned from another (:mod:`spikebert.distill.vocab`), or a fresh teacher-shaped one; with the
    task's labels. Returns it and what was moved (empty when nothing was)."""
    if not init:
        student = SpikeBertForSequenceClassification(
            student_config(teacher_model.config, shape, **label_fields(train.labels)))
        embeddings_from_teacher(student, teacher_model)
        return student, {}
    student = load_student_init(init, train.labels, shape)
    moved = to_teacher_vocabulary(student, load_tokenizer(init), teacher_model.config, tokenizer,
                                  [ex.text for ex in train.examples], init, teacher_path)
    if moved:
        tqdm.write(f"stage 2: the stage-1 student moved to the teacher's tokens and width ({moved})")
    return student, moved


def train_direct(train: TaskData, dev: TaskData, *, args: TrainArgs, tokenizer_from: str | None = None,
                 shape: StudentShape | None = None, max_length: int = MAX_LENGTH) -> dict:
    """The baseline: the same student trained on labels alone, from random weights."""
    path = resolve_teacher(tokenizer_from)
    acc = make_accelerator(args.seed)
    tokenizer = load_tokenizer(path)
    config = student_config(load_teacher_config(path), shape, **label_fields(train.labels))
    student = SpikeBertForSequenceClassification(config)
    data = encode_examples(tokenizer, train.examples, max_length)
    dev_set = encode_examples(tokenizer, dev.examples, max_length)
    distiller = Distiller(student, DIRECT)

    def loss_fn(model, batch, step, epoch):
        return model(batch["input_ids"], batch["attention_mask"], batch["labels"])

    return _fit_classifier("direct", distiller, data, dev_set, train, dev, args, loss_fn, tokenizer, acc,
                           {"tokenizer": path, "distillation": DistillConfig(weights=DIRECT, augment=None).record(),
                            "max_length": max_length})


def _fit_classifier(kind, trainable, data, dev_set, train, dev, args, loss_fn, tokenizer, acc, extra) -> dict:
    """Shared tail of stage 2 and direct training: fit, keep the best on dev, write metrics."""
    evaluate_dev = dev_evaluator(dev_set, train.labels)
    best = {}

    def evaluate(model, accelerator):
        return evaluate_dev(accelerator.unwrap_model(model).student, accelerator)

    def on_best(model, metrics):
        best.update(metrics)
        publish_model(model.student, tokenizer, args.output)

    result = fit(trainable, data, args, loss_fn, evaluate, on_best, accelerator=acc, desc=kind)
    metrics = {"kind": kind, "task": train.name, "dev_accuracy": result.best_score,
               "dev_macro_f1": best.get("macro_f1", result.best_record().get("dev_macro_f1")), "best_step": result.best_step, "steps": result.step,
               "stopped_by": result.stopped_by, "train_examples": len(data), "dev_examples": len(dev_set),
               "seconds": round(result.seconds, 1), "history": result.history,
               "student": trainable.student.config.to_diff_dict(),
               "shape": StudentShape.of_config(trainable.student.config).given(), "args": asdict(args), **extra}
    return finish_job(args.output, metrics, acc)
