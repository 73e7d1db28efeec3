"""``spikebert run``: the whole method for one task, every stage reused or resumed.

    {workdir}/{task}/teacher        fine-tuned teacher            (reused when finished)
    {workdir}/stage1-{teacher id}-{preset}{tag}  stage-1 student (reused across tasks of one teacher)
    {workdir}/{task}/snn{tag}       stage-2 student, the result
    {workdir}/{task}/energy{tag}    energy report and plots
    {workdir}/{task}/report{tag}.json  accuracy and time of every stage
    {workdir}/teacher-{lang}-{preset} a BERT pre-trained from scratch (tokenizer and MLM), for a
                                    language with no installed teacher; shared by its tasks

``{tag}`` names the student-shape flags that differ from the preset (``-T8``, ``-L12-W768``,
``-spike``...) and a firing-rate penalty (``-spikes0.1``), and is empty without them, so students
of different shapes or losses never reuse each other's folders. A
stage whose folder has ``metrics.json`` is finished and reused; an unfinished one resumes from
its last checkpoint. The stage-1 corpus is ``--corpus`` or, by default, every ``*.txt`` in
``$SPIKEBERT_CORPORA/<language>/``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from spikebert.distill.config import MAX_LENGTH, AugmentConfig, DistillConfig, LossWeights, StudentShape, train_args
from spikebert.errors import SpikeBertError
from spikebert.training.checkpoint import write_json

CORPORA_ENV = "SPIKEBERT_CORPORA"


@dataclass(frozen=True)
class Preset:
    """Everything `run` decides on its own. ``shape`` is the student's over the teacher's; a field
    left None is the job's own default (``TEACHER_DEFAULTS``, ``STAGE1_DEFAULTS``,
    ``STAGE2_DEFAULTS``, :class:`AugmentConfig`), so each value is defined once."""

    shape: StudentShape
    teacher_epochs: float | None = None
    stage1_epochs: float | None = None
    stage1_max_texts: int | None = 40000
    stage1_max_minutes: float | None = None
    stage1_max_length: int = 64  # the corpus is cut to task-like lengths: SST-2 averages 25 tokens
    stage2_epochs: float | None = None
    augment: int | None = None  # augmented copies per sentence
    batch_size: int | None = None
    max_length: int = MAX_LENGTH
    limit: int | None = None
    teacher_max_steps: int | None = None
    stage1_max_steps: int | None = None
    stage2_max_steps: int | None = None
    # a teacher from scratch (languages without an installed BERT): MLM pre-training budget, its
    # shape (depth, width, heads; None: teachers.pretrain's) and the fine-tuning such a teacher needs
    scratch_epochs: float | None = 1.0
    scratch_minutes: float | None = 45.0
    scratch_max_steps: int | None = None
    scratch_shape: StudentShape | None = None
    scratch_finetune_lr: float = 3e-4
    scratch_finetune_epochs: float = 3.0


PRESETS = {
    # the best accuracy per CPU hour measured on 2 cores: the student mirrors the MiniLM teacher
    "cpu": Preset(shape=StudentShape(time_steps=4)),
    # the paper's scale, for GPUs: BERT-base-shaped student, T=4, full corpus
    "paper": Preset(shape=StudentShape(depth=12, width=768, heads=12, time_steps=4),
                    stage1_max_texts=None, stage2_epochs=5.0, augment=8),
    # a few steps of everything: smoke tests and trying the tool out
    "tiny": Preset(shape=StudentShape(depth=1, width=64, heads=4, time_steps=2),
                   teacher_epochs=1.0, stage1_max_texts=64, stage2_epochs=1.0, augment=1,
                   batch_size=16, max_length=48, limit=96, teacher_max_steps=4, stage1_max_steps=3,
                   stage2_max_steps=6, scratch_minutes=None, scratch_max_steps=3,
                   scratch_shape=StudentShape(depth=1, width=64, heads=4)),
}


def shape_tag(preset_shape: StudentShape, shape: StudentShape) -> str:
    """``-T8`` for a run with ``--time-steps 8`` over a T=4 preset; ``""`` when nothing differs
    (:meth:`StudentShape.tag`)."""
    return shape.tag(preset_shape)


def run_tag(preset_shape: StudentShape, shape: StudentShape, weights: LossWeights) -> str:
    """The folder tag of a run: its shape's, then a firing-rate penalty other than the default."""
    spikes = f"-spikes{weights.spikes:g}" if weights.spikes != LossWeights.spikes else ""
    return shape_tag(preset_shape, shape) + spikes


def default_corpus(language: str) -> list[str]:
    root = os.environ.get(CORPORA_ENV)
    if not root:
        raise SpikeBertError(f"no stage-1 corpus: pass --corpus FILE or set {CORPORA_ENV} to a folder "
                             f"holding {language}/*.txt (one text a line)")
    files = sorted(str(p) for p in (Path(root) / language).glob("*.txt"))
    if not files:
        raise SpikeBertError(f"{Path(root) / language}: no *.txt corpus files (from {CORPORA_ENV})")
    return files


def scratch_teacher(language: str, work: Path, preset: str, p: Preset, corpus, seed: int, log,
                    data_dir=None) -> Path:
    """Tokenizer and MLM pre-training on the language's corpus plus the *train* texts of the
    language's tasks (unlabelled; never dev or test), reused by every task of the language."""
    from spikebert.teachers.pretrain import PRETRAIN_DEFAULTS, pretrain_teacher, pretraining_texts
    from spikebert.teachers.wordpiece import train_tokenizer

    folder = work / f"teacher-{language}-{preset}"
    if _finished(folder) is not None:
        log(f"[teacher pretrain] reusing {folder}")
        return folder
    files = corpus or default_corpus(language)
    tasks = _tasks_with_train(language, data_dir)
    texts, sources = pretraining_texts(files, p.stage1_max_texts * 4 if p.stage1_max_texts else None, tasks, data_dir)
    tokenizer_dir = folder / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").exists():
        log(f"[tokenizer] -> {tokenizer_dir}")
        train_tokenizer(texts, tokenizer_dir, sources=files + [f"task:{t}/train" for t in tasks])
    log(f"[teacher pretrain] -> {folder} ({len(texts)} texts: {sources.get('corpus_texts', 0)} corpus lines, "
        f"task train texts {sources.get('task_train_texts', {})})")
    args = train_args(PRETRAIN_DEFAULTS, output=str(folder), seed=seed, epochs=p.scratch_epochs,
                      max_minutes=p.scratch_minutes, max_steps=p.scratch_max_steps, batch_size=p.batch_size,
                      resume=True)
    shape = p.scratch_shape  # teachers.pretrain names the same fields layers, hidden, heads
    pretrain_teacher(texts, str(tokenizer_dir), args, shape=shape and dict(
        layers=shape.depth, hidden=shape.width, heads=shape.heads), max_length=p.max_length, sources=sources)
    return folder


def _given(**values) -> dict:
    """The keyword arguments that are set (a preset's None leaves the job's default)."""
    return {k: v for k, v in values.items() if v is not None}


def _tasks_with_train(language: str, data_dir) -> list[str]:
    """The registry tasks of a language whose training file is in the data folder (all of them
    when the data come from the hub)."""
    from spikebert.data.tasks import TASKS, resolve_data_dir, split_file

    root = resolve_data_dir(data_dir)
    return [name for name, spec in TASKS.items() if spec.language == language
            and (root is None or split_file(spec, "train", root).is_file())]


def _finished(folder: Path) -> dict | None:
    m = folder / "metrics.json"
    return json.loads(m.read_text()) if m.exists() else None


@dataclass
class _Run:
    """One ``spikebert run``: where its folders go, what it has reported so far, and each stage."""

    task: str
    preset: str
    p: Preset
    work: Path
    seed: int
    log: object
    report: dict = field(default_factory=dict)

    def stage(self, name: str, folder: Path, job) -> dict:
        """Reuse a finished stage's folder, or run ``job`` (which resumes an unfinished one)."""
        done = _finished(folder)
        if done is not None:
            self.log(f"[{name}] reusing {folder}")
            self.report["stages"][name] = {"folder": str(folder), "reused": True, "seconds": done.get("seconds"),
                                           "dev_accuracy": done.get("dev_accuracy")}
            return done
        self.log(f"[{name}] -> {folder}")
        t0 = time.time()
        m = job()
        self.report["stages"][name] = {"folder": str(folder), "reused": False,
                                       "seconds": round(m.get("seconds", time.time() - t0), 1),
                                       "dev_accuracy": m.get("dev_accuracy")}
        return m

    def teacher(self, train, dev, teacher_path: str, finetune: dict) -> Path:
        from spikebert.teachers.finetune import TEACHER_DEFAULTS, finetune_teacher

        folder = self.work / self.task / "teacher"
        args = train_args(TEACHER_DEFAULTS, output=str(folder), seed=self.seed, max_steps=self.p.teacher_max_steps,
                          batch_size=self.p.batch_size, resume=True, **finetune)
        self.stage("teacher", folder, lambda: finetune_teacher(
            train, dev, args=args, teacher=teacher_path, max_length=self.p.max_length))
        return folder

    def stage1(self, teacher_path: str, files: list[str], shape: StudentShape, distill: DistillConfig,
               tag: str) -> Path:
        from spikebert.distill.stages import STAGE1_DEFAULTS, pretrain_distill

        p = self.p
        folder = self.work / f"stage1-{_teacher_id(teacher_path)}-{self.preset}{tag}"
        args = train_args(STAGE1_DEFAULTS, output=str(folder), seed=self.seed, epochs=p.stage1_epochs,
                          max_steps=p.stage1_max_steps, max_minutes=p.stage1_max_minutes, batch_size=p.batch_size,
                          resume=True)
        self.stage("stage1", folder, lambda: pretrain_distill(
            teacher=teacher_path, corpus=files, args=args, shape=shape, distill=distill,
            max_length=min(p.stage1_max_length, p.max_length), limit=p.stage1_max_texts, shuffle_seed=self.seed))
        return folder

    def stage2(self, train, dev, teacher_dir: Path, stage1_dir: Path, shape: StudentShape,
               distill: DistillConfig, tag: str) -> tuple[Path, dict]:
        from spikebert.distill.stages import STAGE2_DEFAULTS, task_distill

        folder = self.work / self.task / f"snn{tag}"
        args = train_args(STAGE2_DEFAULTS, output=str(folder), seed=self.seed, epochs=self.p.stage2_epochs,
                          max_steps=self.p.stage2_max_steps, batch_size=self.p.batch_size, resume=True)
        m = self.stage("stage2", folder, lambda: task_distill(
            train, dev, teacher=str(teacher_dir), args=args, init=str(stage1_dir), shape=shape, distill=distill,
            max_length=self.p.max_length, cache_dir=str(self.work / self.task)))
        return folder, m

    def energy(self, snn_dir: Path, teacher_dir: Path, dev, tag: str) -> None:
        from spikebert.analysis.energy import measure, save_plots
        from spikebert.folders import load_classifier
        from spikebert.teachers.loading import load_teacher

        snn, tokenizer = load_classifier(snn_dir)
        ann, ann_tokenizer = load_teacher(teacher_dir, head="classifier")
        e = measure(snn, tokenizer, [ex.text for ex in dev.examples], [ex.label for ex in dev.examples], ann=ann,
                    ann_tokenizer=ann_tokenizer, max_length=self.p.max_length, reference=str(teacher_dir))
        folder = self.work / self.task / f"energy{tag}"
        folder.mkdir(parents=True, exist_ok=True)
        e["plots"] = save_plots(e, folder)
        write_json(folder / "energy.json", e)
        self.report["energy"] = {k: e[k] for k in ("snn_energy_mj", "ann_energy_mj", "energy_ratio", "firing_rate")}
        self.report["energy"]["dense_residual_ratio"] = e["snn_dense_residual"]["energy_ratio"]


def _teacher_id(teacher_path: str) -> str:
    """The teacher's name in the stage-1 folder (a package's ``.../NAME/model`` is NAME)."""
    path = Path(teacher_path)
    return path.name if path.name != "model" else path.parent.name


def _as_shape(shape: StudentShape | Mapping | None) -> StudentShape:
    if shape is None or isinstance(shape, StudentShape):
        return shape or StudentShape()
    try:
        return StudentShape(**shape)
    except TypeError:
        raise SpikeBertError(f"student shape {dict(shape)}: the fields are those of StudentShape "
                             "(depth, width, heads, time_steps, tau, threshold, positions, input_encoding)") from None


def run(task: str, *, workdir: str = "runs", preset: str = "cpu", teacher: str | None = None,
        corpus: list[str] | None = None, data_dir: str | None = None, seed: int = 42,
        shape: StudentShape | Mapping | None = None, w_spikes: float = LossWeights.spikes, energy: bool = True,
        log=print) -> dict:
    """The whole method for ``task`` (see the module docstring); returns the report it writes."""
    from spikebert.data.tasks import load_data
    from spikebert.teachers.loading import resolve_teacher

    if preset not in PRESETS:
        raise SpikeBertError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    p = PRESETS[preset]
    shape = _as_shape(shape).over(p.shape)
    distill = DistillConfig(weights=LossWeights(spikes=w_spikes), augment=AugmentConfig(
        **_given(copies=p.augment, seed=seed)))
    tag = run_tag(p.shape, shape, distill.weights)
    train, dev = load_data(task, "train", data_dir, limit=p.limit), load_data(task, "dev", data_dir)
    r = _Run(task, preset, p, Path(workdir), seed, log)
    finetune = _given(epochs=p.teacher_epochs)
    scratch = teacher is None and train.language != "en"
    if scratch:
        teacher = str(scratch_teacher(train.language, r.work, preset, p, corpus, seed, log, data_dir))
        finetune = {"lr": p.scratch_finetune_lr, "epochs": p.scratch_finetune_epochs}
    teacher_path = resolve_teacher(teacher)
    r.report = {"task": task, "preset": preset, "shape": shape.given(), "distillation": distill.record(),
                "teacher": teacher_path, "stages": {}}
    if scratch:  # the teacher was pre-trained here: its stage is part of the run
        pm = _finished(Path(teacher_path)) or {}
        r.report["stages"]["teacher_pretrain"] = {
            "folder": teacher_path, "seconds": pm.get("seconds"), "steps": pm.get("steps"),
            "heldout_mlm_loss": pm.get("heldout_loss"), "texts": pm.get("texts")}
    teacher_dir = r.teacher(train, dev, teacher_path, finetune)
    stage1_dir = r.stage1(teacher_path, corpus or default_corpus(train.language), shape, distill, tag)
    snn_dir, m2 = r.stage2(train, dev, teacher_dir, stage1_dir, shape, distill, tag)
    r.report["teacher_dev_accuracy"] = (_finished(teacher_dir) or {}).get("dev_accuracy")
    r.report["snn_dev_accuracy"] = m2.get("dev_accuracy")
    if energy:
        r.energy(snn_dir, teacher_dir, dev, tag)
    write_json(r.work / r.task / f"report{tag}.json", r.report)
    return r.report
