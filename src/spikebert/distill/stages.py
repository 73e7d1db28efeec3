"""The training jobs: stage 1 (pre-distillation), stage 2 (task distillation) and direct training.

Each job reads its inputs, builds the student and the trainable module, hands both to
:func:`spikebert.training.trainer.fit`, and publishes a model folder with ``metrics.json`` and ``log.jsonl``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

from tqdm.auto import tqdm

from spikebert.data.batching import MAX_LENGTH, Encoded, encode_examples, tokenize
from spikebert.data.corpus import load_corpus
from spikebert.data.tasks import TaskData, label_fields
from spikebert.distill.augment import augment
from spikebert.distill.attention import attending, attention_layers, check_heads, teacher_attentions
from spikebert.distill.attention_cache import cached_attentions
from spikebert.distill.config import (ATTN_CACHE_DTYPE, DIRECT, STAGE1, TEACHER_CACHE, TEACHER_CACHE_DTYPE,
                                      DistillConfig, LayerMap, StudentShape)
from spikebert.distill.inherit import inherit_config, inherit_from_teacher
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
from spikebert.training.device import teacher_forward
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
    ``distill``, stage 1 takes the layer map, the attention, firing-rate and energy weights (its
    loss is the feature MSE alone otherwise) and ``inherit`` (the student starts from the
    teacher's layers, :mod:`spikebert.distill.inherit`)."""
    distill = distill or DistillConfig()
    path = resolve_teacher(teacher)
    acc = make_accelerator(args.seed, unused_parameters=True)
    teacher_model, tokenizer = load_teacher(path, head="encoder")
    teacher_model = teacher_model.to(acc.device).requires_grad_(False)
    w = distill.weights
    student, lmap, inherited = _fresh_student(teacher_model, path, shape, distill)
    config = student.config
    with acc.main_process_first():  # one process builds the tokenised corpus cache, the others read it
        data = load_corpus(corpus, tokenizer, max_length, limit, shuffle_seed)
    used = DistillConfig(weights=replace(STAGE1, spikes=w.spikes, energy=w.energy, attn=w.attn),
                         layer_map=distill.layer_map, augment=None, inherit=distill.inherit)
    aligner = FeatureAligner(student, lmap, used.weights)
    attn_layers = attention_layers(lmap) if w.attn else ()
    loss_fn = stage1_loss(teacher_model, acc.device, attn_layers, path)

    def publish(model, _):
        publish_model(model.student, tokenizer, args.output)

    result = fit(aligner, data, args, loss_fn, None, publish, accelerator=acc, desc="stage 1")
    metrics = {"kind": "stage1", "teacher": path, "corpus": [str(c) for c in corpus], "texts": len(data),
               "inherited": inherited,
               "sample_seed": shuffle_seed, "distillation": used.record(lmap), "steps": result.step,
               "stopped_by": result.stopped_by, "final_loss": last_logged(args.output),
               "seconds": round(result.seconds, 1), "student": config.to_diff_dict(),
               "shape": StudentShape.of_config(config).given(), "args": {**asdict(args), "max_length": max_length}}
    return finish_job(args.output, metrics, acc)


def stage1_loss(teacher_model, device, attn_layers: tuple[int, ...] = (), teacher_path: str | None = None):
    """Stage 1's ``loss_fn`` for :func:`~spikebert.training.trainer.fit`: the teacher's hidden states
    of the batch (:func:`~spikebert.training.device.teacher_forward`), and its attention maps of
    ``attn_layers`` (``--w-attn``), then the aligner's loss."""

    def loss_fn(model, batch, step, epoch):
        with teacher_forward(device):
            t = teacher_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              output_hidden_states=True, output_attentions=bool(attn_layers))
        maps = teacher_attentions(t, attn_layers, teacher_path) if attn_layers else None
        return model(batch["input_ids"], batch["attention_mask"], t.hidden_states, maps)

    return loss_fn


def stage2_loss(cache: "CachedTeacher | None", teacher_model, need_hidden: bool, device,
                attn_layers: tuple[int, ...] = (), teacher_path: str | None = None):
    """Stage 2's ``loss_fn``: the teacher's logits (hidden states when ``need_hidden``, attention
    maps of ``attn_layers``) from the batch's cached columns (:func:`cached_columns`) or, without a
    cache, from the teacher run live; then the distiller's loss."""

    def loss_fn(model, batch, step, epoch):
        if cache is not None:
            logits, hidden, maps = from_cache(batch)
        else:
            with teacher_forward(device):
                t = teacher_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  output_hidden_states=need_hidden, output_attentions=bool(attn_layers))
            logits, hidden = t.logits, t.hidden_states if need_hidden else None
            maps = teacher_attentions(t, attn_layers, teacher_path) if attn_layers else None
        return model(batch["input_ids"], batch["attention_mask"], batch["labels"], logits, hidden, maps)

    return loss_fn
def _fresh_student(teacher_model, teacher_path: str, shape: StudentShape | None, distill: DistillConfig,
                   **config) -> tuple[SpikeBertForSequenceClassification, LayerMap, dict | None]:
    """A new student shaped by the teacher and ``shape`` (``config``: more SpikeBertConfig fields),
    its embeddings from the teacher's, and with ``distill.inherit`` its layers too; the layer map
    of ``distill``, resolved; what was inherited (None: nothing). With the attention weight, the
    teacher is set to return its attention maps and the head counts are checked."""
    t_config = teacher_model.config
    if distill.inherit:
        config |= inherit_config(t_config)
    student = SpikeBertForSequenceClassification(student_config(t_config, shape, **config))
    if distill.weights.attn:
        check_heads(student.config, t_config, teacher_path)
        attending(teacher_model, teacher_path)
    embeddings_from_teacher(student, teacher_model)
    lmap = LayerMap.parse(distill.layer_map, student.config.num_hidden_layers, t_config.num_hidden_layers)
    inherited = inherit_from_teacher(student, teacher_model, lmap, teacher_path) if distill.inherit else None
    if inherited:
        tqdm.write(f"the student's blocks start from the teacher's layers {inherited['pairs']} "
                   f"({inherited['layout']} layout, {inherited['tensors']} tensors)")
    return student, lmap, inherited


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
                 teacher_cache_dtype: str = TEACHER_CACHE_DTYPE, eval_data: TaskData | None = None) -> dict:
    """Stage 2: learn the task from a fine-tuned teacher (logits, hidden states, embeddings, labels),
    on the training set plus ``distill.augment``'s copies.

    ``cache_dir`` holds what is reused across runs: the augmented texts (default: the output
    folder) and, with ``teacher_cache``, the teacher's outputs over the training set and its copies
    (``teacher-outputs/``, default: the folder the output folder is in), computed once and read by
    every epoch, seed and student variant of the same teacher and data
    (:mod:`spikebert.distill.teacher_cache`); without room for them the teacher runs live."""
    distill = distill or DistillConfig()
    acc = make_accelerator(args.seed, unused_parameters=True)
    teacher_path = resolve_teacher(teacher)
    teacher_model, tokenizer = load_teacher(teacher_path, head="classifier", labels=train.labels)
    teacher_model = teacher_model.to(acc.device).requires_grad_(False)
    t_emb = teacher_word_embeddings(teacher_model)
    student, vocabulary, inherited = _stage2_student(teacher_model, tokenizer, teacher_path, train, init, shape,
                                                     distill)
    lmap = LayerMap.parse(distill.layer_map, student.config.num_hidden_layers, teacher_model.config.num_hidden_layers)
    attn_layers = attention_layers(lmap) if distill.weights.attn else ()
    check_output_dir(args.output)  # before the augmentation cache is written into it
    cfg = distill.augment
    with acc.main_process_first():  # one process writes the augmentation cache, the others read it
        augmented = augment([ex.text for ex in train.examples], tokenizer, t_emb, cfg,
                            cache_dir or args.output) if cfg and cfg.copies > 0 else []
    base, augmented_ids = _train_parts(tokenizer, train, augmented, max_length)
    data = _joined(base, augmented_ids)
    dev_set = encode_examples(tokenizer, dev.examples, max_length)
    distiller = Distiller(student, distill.weights, lmap, t_emb)
    need_hidden = distill.weights.rep > 0
    cache, attn_cache, build = None, None, False
    if teacher_cache:
        # a run shorter than one epoch reads fewer texts than building the cache would: it only
        # uses a cache that is there already
        build = _planned_texts(args, len(data)) >= len(data)
        where = dict(parts=[base.input_ids, augmented_ids], pad_token_id=base.pad_token_id,
                     root=Path(cache_dir) if cache_dir else Path(args.output).resolve().parent, max_length=max_length,
                     build=build)
        cache = _teacher_outputs(acc, teacher_model, teacher_path, layers=tuple(t for _, t in lmap.pairs)
                                 if need_hidden else (), dtype=teacher_cache_dtype, **where)
        if cache is not None and attn_layers:  # the attention maps: a part of their own (attention_cache.py)
            attn_cache = _teacher_outputs(acc, teacher_model, teacher_path, layers=attn_layers, dtype=ATTN_CACHE_DTYPE,
                                          make=cached_attentions, **where)
            cache = cache if attn_cache is not None else None
    if cache is not None:
        teacher_model = None  # every output it would give is in the cache
    loss_fn = stage2_loss(cache, teacher_model, need_hidden, acc.device, attn_layers, teacher_path)

    return _fit_classifier("stage2", distiller, data, dev_set, train, dev, args, loss_fn, tokenizer, acc, {
        "teacher": teacher, "init": init, "init_moved": vocabulary, "inherited": inherited,
        "distillation": distill.record(lmap),
        "augmented_texts": len(augmented),
        "max_length": max_length,
        "teacher_cache": cache.record() if cache is not None else {"used": False, "asked": teacher_cache, "why": (
            "not asked" if not teacher_cache else "a run shorter than one epoch, and no cache found" if not build
            else "no room on disk")},
        **({"attention_cache": attn_cache.record()} if attn_cache is not None else {})}, eval_data, max_length,
        batch_extra=cached_columns(cache, attn_cache) if cache is not None else None)


def cached_columns(cache: CachedTeacher, attn_cache=None):
    """A batch's cached teacher outputs as batch columns (``teacher_logits``, ``teacher_hidden.{layer}``,
    ``teacher_attn.{layer}``), looked up as the loader collates the batch (in its workers on CUDA),
    not in the training step."""

    def columns(batch: dict) -> dict:
        length = batch["input_ids"].shape[1]
        logits, hidden = cache(batch["index"], length)
        maps = attn_cache(batch["index"], length) if attn_cache is not None else {}
        return {"teacher_logits": logits, **{f"teacher_hidden.{k}": v for k, v in (hidden or {}).items()},
                **{f"teacher_attn.{k}": v for k, v in maps.items()}}

    return columns


def _columns(batch: dict, prefix: str) -> dict | None:
    return {int(k[len(prefix):]): v for k, v in batch.items() if k.startswith(prefix)} or None


def from_cache(batch: dict) -> tuple:
    """``(logits, hidden, maps)`` of the columns :func:`cached_columns` added (None where none)."""
    return batch["teacher_logits"], _columns(batch, "teacher_hidden."), _columns(batch, "teacher_attn.")


def _planned_texts(args: TrainArgs, n: int) -> int:
    """Texts a run will read (its planned steps × batch size; ``n`` when only a time budget bounds it)."""
    per_epoch = math.ceil(n / args.batch_size)
    steps = [s for s in (args.max_steps, math.ceil(args.epochs * per_epoch) if args.epochs else None) if s]
    return min(steps) * args.batch_size if steps else n


def _teacher_outputs(acc, teacher_model, teacher_path: str, parts, pad_token_id: int, layers, root: Path,
                     max_length: int, dtype: str, build: bool = True, make=cached_teacher) -> CachedTeacher | None:
    """The cached teacher outputs of ``parts`` (``make``: :func:`cached_teacher`, or
    :func:`cached_attentions` for the attention maps): built by the main process (when
    ``build``), read by every process; None when they are not there and not built (the teacher
    then runs live)."""
    kwargs = dict(teacher_id=teacher_fingerprint(teacher_path), parts=parts, pad_token_id=pad_token_id,
                  layers=layers, root=root, max_length=max_length, dtype=dtype, log=tqdm.write)
    cache = make(teacher_model, build=build, **kwargs) if acc.is_main_process else None
    acc.wait_for_everyone()
    if not acc.is_main_process:
        cache = make(teacher_model, build=False, **kwargs)
    return cache


def _stage2_student(teacher_model, tokenizer, teacher_path: str, train: TaskData, init: str | None,
                    shape: StudentShape | None, distill: DistillConfig):
    """The stage-1 student (``init``), moved to this teacher's vocabulary and width when stage 1
    learned from another (:mod:`spikebert.distill.vocab`), or a fresh teacher-shaped one (its
    layers the teacher's with ``distill.inherit``); with the task's labels. Returns it, what was
    moved (empty when nothing was) and what was inherited (None: nothing)."""
    if not init:
        student, _, inherited = _fresh_student(teacher_model, teacher_path, shape, distill, **label_fields(train.labels))
        return student, {}, inherited
    if distill.inherit:
        raise SpikeBertError("--init-from-teacher starts a fresh student from the teacher's weights: give it "
                             f"without --init (here --init {init})")
    student = load_student_init(init, train.labels, shape)
    if distill.weights.attn:
        check_heads(student.config, teacher_model.config, teacher_path)
        attending(teacher_model, teacher_path)
    moved = to_teacher_vocabulary(student, load_tokenizer(init), teacher_model.config, tokenizer,
                                  [ex.text for ex in train.examples], init, teacher_path)
    if moved:
        tqdm.write(f"stage 2: the stage-1 student moved to the teacher's tokens and width ({moved})")
    return student, moved, None


def train_direct(train: TaskData, dev: TaskData, *, args: TrainArgs, tokenizer_from: str | None = None,
                 shape: StudentShape | None = None, max_length: int = MAX_LENGTH,
                 eval_data: TaskData | None = None) -> dict:
    """The baseline: the same student trained on labels alone, from random weights."""
    path = resolve_teacher(tokenizer_from)
    acc = make_accelerator(args.seed, unused_parameters=True)
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
                            "max_length": max_length}, eval_data, max_length)


def read_eval_file(path: str, train: TaskData, text_column: str = "text", label_column: str = "label") -> TaskData:
    """``--eval-file``: a second labelled file, read as the training data's own files are (a
    task's format and classes; a user file's columns, with the training file's classes). A file
    that does not parse, or a label the task lacks, is one error naming the file and line."""
    from spikebert.data.tasks import TASKS, load_data

    task = train.name if train.name in TASKS else None
    return load_data(task, "eval", None, path, text_column, label_column, labels=train.labels, language=train.language)


def eval_file_figures(history: list, best_step: int | None, data: TaskData) -> dict:
    """``metrics.json``'s account of ``--eval-file``: ``eval_file_by_epoch`` (its accuracy after
    every evaluation) and ``eval_file`` (the file; the figure at the dev-selected step, the
    project's; the best of all epochs, what the official code reports on its test split)."""
    by_epoch = [{"epoch": round(h["epoch"], 4), "step": h["step"], "accuracy": h["eval_file_accuracy"],
                 "macro_f1": h["eval_file_macro_f1"]} for h in history if "eval_file_accuracy" in h]
    best = max(by_epoch, key=lambda r: r["accuracy"], default={})
    at_dev = next((r for r in by_epoch if r["step"] == best_step), {})
    return {"eval_file_by_epoch": by_epoch, "eval_file": {
        "file": data.source, "examples": len(data.examples), "at_dev_selected_epoch": at_dev.get("accuracy"),
        "best_epoch_on_file": best.get("epoch"), "best_accuracy_on_file": best.get("accuracy"),
        "note": "never used for selection; best_accuracy_on_file picks its epoch on this file itself"}}


def _fit_classifier(kind, trainable, data, dev_set, train, dev, args, loss_fn, tokenizer, acc, extra,
                    eval_data: TaskData | None = None, max_length: int = MAX_LENGTH, batch_extra=None) -> dict:
    """Shared tail of stage 2 and direct training: fit, keep the best on dev, write metrics; with
    ``eval_data`` (``--eval-file``), its accuracy after every evaluation too, never selected on."""
    evaluate_dev = dev_evaluator(dev_set, train.labels)
    evaluate_file = dev_evaluator(encode_examples(tokenizer, eval_data.examples, max_length),
                                  train.labels) if eval_data is not None else None
    best = {}

    def evaluate(model, accelerator):
        student = accelerator.unwrap_model(model).student
        m = evaluate_dev(student, accelerator)
        if evaluate_file is not None:
            f = evaluate_file(student, accelerator)
            m["also"] = {"eval_file_accuracy": f["accuracy"], "eval_file_macro_f1": f["macro_f1"]}
        return m

    def on_best(model, metrics):
        best.update(metrics)
        publish_model(model.student, tokenizer, args.output)

    result = fit(trainable, data, args, loss_fn, evaluate, on_best, accelerator=acc, desc=kind, batch_extra=batch_extra)
    metrics = {"kind": kind, "task": train.name, "dev_accuracy": result.best_score,
               "dev_macro_f1": best.get("macro_f1", result.best_record().get("dev_macro_f1")), "best_step": result.best_step, "steps": result.step,
               "stopped_by": result.stopped_by, "train_examples": len(data), "dev_examples": len(dev_set),
               "seconds": round(result.seconds, 1), "history": result.history,
               "student": trainable.student.config.to_diff_dict(),
               "shape": StudentShape.of_config(trainable.student.config).given(), "args": asdict(args), **extra}
    if eval_data is not None:
        metrics |= eval_file_figures(result.history, result.best_step, eval_data)
    return finish_job(args.output, metrics, acc)
