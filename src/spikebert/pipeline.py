"""``spikebert run``: the whole method for one task or for the user's labelled files, every stage
reused or resumed.

    {workdir}/{name}/teacher{t}     fine-tuned teacher (README.md: its model card; reused when finished)
    {workdir}/stage1-{teacher id}-{preset}{tag}  stage-1 student (reused across tasks of one teacher;
                                    from the MiniLM for a --teacher that splits texts as it does)
    {workdir}/{name}/snn{tag}       stage-2 student, the result (README.md: its model card)
    {workdir}/{name}/energy{tag}    energy report and plots
    {workdir}/{name}/report{tag}.json  accuracy and time of every stage (and the test file's figures)
    {workdir}/{name}/report{tag}.html  the page to look at: curves, confusion, energy, firing rates, rasters
    {workdir}/{name}/data.json      own data: where it came from and its digest (other data under the
                                    same name is refused, since the stages would be reused)
    {workdir}/teacher-{lang}-{preset} a BERT pre-trained from scratch (tokenizer and MLM), for a
                                    language with no installed teacher; shared by its tasks

``{name}`` is the task, or for own data (``--train-file``) the training file's stem or ``--name``;
the language of own data (``--language``, or detected from its texts) picks the teacher and the
stage-1 corpus as a task's language does, so stage 1 is shared with the language's tasks.
``{tag}`` names the student-shape flags that differ from the preset (``-T8``, ``-L12-W768``,
``-spike``...) and a penalty (``-spikes0.1``, ``-energy0.5``), and is empty without them, so students
of different shapes or losses never reuse each other's folders. ``{t}`` is empty for the
language's default teacher and ``-{teacher id}`` for one given by ``--teacher`` (``-all-mpnet-base-v2``
for ``mpnet``); it is part of ``{tag}`` too, so every folder of a run names its teacher, followed
by ``-stage1-{teacher id}`` when ``--stage1-teacher`` overrides the stage-1 teacher ``run`` picks
(which changes the teacher, not the student: the student keeps the depth, width and heads of
``run``'s own choice, and its stage-1 folder names them, ``stage1-all-mpnet-base-v2-cpu-L6-W384-H12``). A
stage whose folder has ``metrics.json`` is finished and reused; an unfinished one resumes from
its last checkpoint. The stage-1 corpus is ``--corpus`` or, by default, every ``*.txt`` in
``$SPIKEBERT_CORPORA/<language>/``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from spikebert.analysis.report import find_energy
from spikebert.data.batching import MAX_LENGTH
from spikebert.data.tasks import TASKS, Splits
from spikebert.distill.config import AugmentConfig, DistillConfig, LossWeights, StudentShape, check_lr, train_args
from spikebert.errors import SpikeBertError
from spikebert.training.checkpoint import write_json

CORPORA_ENV = "SPIKEBERT_CORPORA"
DATA_RECORD = "data.json"  # in an own-data run's folder: the data's digest and files


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
    # one modern GPU, the cpu preset's student: twice its batch, the whole stage-1 corpus (119,685
    # English texts, 3 × the cpu preset's 40,000), twice its augmented copies. Sized from the step
    # times measured on an H200 (../shared/gpu/README.md), not yet run: estimated, to be confirmed
    # (docs/incoming-gpu.md gives the arithmetic)
    "gpu": Preset(shape=StudentShape(time_steps=4), batch_size=64, stage1_max_texts=None, augment=2),
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


def run_tag(preset_shape: StudentShape, shape: StudentShape, weights: LossWeights, inherit: bool = False) -> str:
    """The folder tag of a run: its shape's, then a firing-rate or energy penalty other than the
    default, then attention distillation (``-attn0.1``) and weight inheritance (``-inherit``)."""
    spikes = f"-spikes{weights.spikes:g}" if weights.spikes != LossWeights.spikes else ""
    energy = f"-energy{weights.energy:g}" if weights.energy != LossWeights.energy else ""
    attn = f"-attn{weights.attn:g}" if weights.attn != LossWeights.attn else ""
    return shape_tag(preset_shape, shape) + spikes + energy + attn + ("-inherit" if inherit else "")


def lr_tag(stage2_lr: float | None) -> str:
    """``-lr0.0002`` for a stage 2 at a peak learning rate other than the trainer's default; the
    stage-1 folder never carries it (stage 1 keeps its own rate)."""
    from spikebert.training.trainer import TrainArgs

    return f"-lr{stage2_lr:g}" if stage2_lr is not None and stage2_lr != TrainArgs.lr else ""


def default_corpus(language: str) -> list[str]:
    """The stage-1 corpus of a language: every ``*.txt`` in ``$SPIKEBERT_CORPORA/<language>/``."""
    root = os.environ.get(CORPORA_ENV)
    if not root:
        raise SpikeBertError(f"no stage-1 corpus: pass --corpus FILE or set {CORPORA_ENV} to a folder "
                             f"holding {language}/*.txt (one text a line)")
    files = sorted(str(p) for p in (Path(root) / language).glob("*.txt"))
    if not files:
        raise SpikeBertError(f"{Path(root) / language}: no *.txt corpus files (from {CORPORA_ENV})")
    return files


def scratch_teacher(language: str, work: Path, preset: str, p: Preset, corpus, seed: int, log,
                    data_dir=None, checkpoints: dict | None = None) -> Path:
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
                      resume=True, **(checkpoints or {}))
    pretrain_teacher(texts, str(tokenizer_dir), args, shape=_scratch_shape(p), max_length=p.max_length,
                     sources=sources)
    return folder


def _scratch_shape(p: Preset) -> dict | None:
    """The preset's shape of a teacher pre-trained from scratch, as :mod:`spikebert.teachers.pretrain`
    names its fields (None: that module's default shape)."""
    shape = p.scratch_shape
    return shape and dict(layers=shape.depth, hidden=shape.width, heads=shape.heads)


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
    """A stage folder's ``metrics.json`` (it marks the stage finished), verified, or None
    (:func:`~spikebert.training.plots.finished_metrics`)."""
    from spikebert.training.plots import finished_metrics

    return finished_metrics(folder)


@dataclass
class _Run:
    """One ``spikebert run``: where its folders go, what it has reported so far, and each stage.
    ``name`` is the run's folder under the work folder: the task, or the own data's name."""

    name: str
    preset: str
    p: Preset
    work: Path
    seed: int
    log: object
    report: dict = field(default_factory=dict)
    checkpoints: dict = field(default_factory=dict)  # save_every, keep_checkpoints where given: every stage's

    @property
    def folder(self) -> Path:
        """The run's own folder, ``{workdir}/{name}``."""
        return self.work / self.name

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

    def claim(self, data: Splits) -> None:
        """Own data: the run folder is this data's (``data.json`` holds its digest and where it came
        from); a folder made from other data under the same name is refused, since its stages would
        be reused."""
        path = self.folder / DATA_RECORD
        digest = data.record["fingerprint"]
        if path.exists():
            before = json.loads(path.read_text(encoding="utf-8"))
            if before.get("fingerprint") != digest:
                raise SpikeBertError(f"{self.folder}: made from other data ({before.get('train_file')}); its stages "
                                     f"would be reused: pass --name NEW, another --workdir, or delete the folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, data.record)

    def teacher(self, train, dev, teacher_path: str, finetune: dict, teacher_tag: str = "") -> Path:
        """Fine-tune the teacher on the run's data (``{name}/teacher{teacher_tag}``)."""
        from spikebert.teachers.finetune import TEACHER_DEFAULTS, finetune_teacher

        folder = self.folder / f"teacher{teacher_tag}"
        args = train_args(TEACHER_DEFAULTS, output=str(folder), seed=self.seed, max_steps=self.p.teacher_max_steps,
                          batch_size=self.p.batch_size, resume=True, **finetune, **self.checkpoints)
        self.stage("teacher", folder, lambda: finetune_teacher(
            train, dev, args=args, teacher=teacher_path, max_length=self.p.max_length))
        return folder

    def stage1(self, teacher_path: str, files: list[str], shape: StudentShape, distill: DistillConfig,
               tag: str) -> Path:
        """Stage 1, shared by every run of one teacher, preset and tag (``stage1-{teacher id}-{preset}{tag}``)."""
        from spikebert.distill.stages import STAGE1_DEFAULTS, pretrain_distill

        p = self.p
        folder = self.work / f"stage1-{_teacher_id(teacher_path)}-{self.preset}{tag}"
        args = train_args(STAGE1_DEFAULTS, output=str(folder), seed=self.seed, epochs=p.stage1_epochs,
                          max_steps=p.stage1_max_steps, max_minutes=p.stage1_max_minutes, batch_size=p.batch_size,
                          resume=True, **self.checkpoints)
        self.stage("stage1", folder, lambda: pretrain_distill(
            teacher=teacher_path, corpus=files, args=args, shape=shape, distill=distill,
            max_length=min(p.stage1_max_length, p.max_length), limit=p.stage1_max_texts, shuffle_seed=self.seed))
        return folder

    def stage2(self, train, dev, teacher_dir: Path, stage1_dir: Path, shape: StudentShape,
               distill: DistillConfig, tag: str, eval_data=None, lr: float | None = None) -> tuple[Path, dict]:
        """Stage 2 on the run's data from the stage-1 student (``{name}/snn{tag}``); ``eval_data``:
        ``--eval-file``'s, evaluated after every epoch, never selected on; ``lr``: its peak learning
        rate (None: the trainer's default)."""
        from spikebert.distill.stages import STAGE2_DEFAULTS, task_distill

        folder = self.folder / f"snn{tag}"
        args = train_args(STAGE2_DEFAULTS, output=str(folder), seed=self.seed, epochs=self.p.stage2_epochs,
                          max_steps=self.p.stage2_max_steps, batch_size=self.p.batch_size, resume=True, lr=lr,
                          **self.checkpoints)
        m = self.stage("stage2", folder, lambda: task_distill(
            train, dev, teacher=str(teacher_dir), args=args, init=str(stage1_dir), shape=shape,
            distill=replace(distill, inherit=False), max_length=self.p.max_length, cache_dir=str(self.folder),
            eval_data=eval_data))
        if eval_data is not None and "eval_file" not in m:
            self.log(f"[eval-file] {folder} was trained without --eval-file and is reused: no per-epoch figures "
                     "(delete the folder to train it again)")
        return folder, m

    def energy(self, snn_dir: Path, teacher_dir: Path, dev, tag: str) -> dict:
        """Measure the energy on all of dev against the teacher; ``energy{tag}/`` gets the report
        and its plots. Returns the report."""
        from spikebert.analysis.energy import measure, save_plots
        from spikebert.folders import load_classifier
        from spikebert.teachers.loading import load_teacher

        snn, tokenizer = load_classifier(snn_dir)
        ann, ann_tokenizer = load_teacher(teacher_dir, head="classifier")
        e = measure(snn, tokenizer, [ex.text for ex in dev.examples], [ex.label for ex in dev.examples], ann=ann,
                    ann_tokenizer=ann_tokenizer, max_length=self.p.max_length, reference=str(teacher_dir))
        folder = self.folder / f"energy{tag}"
        folder.mkdir(parents=True, exist_ok=True)
        e["plots"] = save_plots(e, folder)
        write_json(folder / "energy.json", e)
        return e

    def test(self, test, snn_dir: Path, teacher_dir: Path) -> dict:
        """The held-out test file, evaluated once with the selected student and the teacher."""
        from spikebert.analysis.report import evaluate_model
        from spikebert.folders import load_classifier

        out = {"file": test.source, "n": len(test.examples)}
        for who, folder in (("snn", snn_dir), ("teacher", teacher_dir)):
            m = evaluate_model(*load_classifier(folder), test, self.p.max_length)
            out[who] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
        self.log(f"[test] {test.source}: SNN {out['snn']['accuracy'] * 100:.2f} %, teacher "
                 f"{out['teacher']['accuracy'] * 100:.2f} % ({out['n']} examples; not used for selection)")
        return out

    def publish(self, data: Splits, snn_dir: Path, teacher_dir: Path, energy: dict | None, tag: str,
                html: bool) -> None:
        """Model cards in the student and teacher folders, ``report{tag}.json`` and the HTML page."""
        from spikebert.analysis.report import model_report
        from spikebert.card import write_model_card

        language = data.train.language
        write_model_card(snn_dir, energy=energy, stages=self.report["stages"], language=language)
        write_model_card(teacher_dir, language=language)
        page = self.folder / f"report{tag}.html"
        if html:
            self.report["html"] = str(page)
        write_json(self.folder / f"report{tag}.json", self.report)
        if html:
            model_report(snn_dir, data.dev, page, energy=energy, max_length=self.p.max_length,
                         teacher_accuracy=self.report.get("teacher_dev_accuracy"))
            self.log(f"[report] {page}")


def _teacher_tag(teacher: str | None, teacher_path: str) -> str:
    """``""`` for the language's default teacher; ``-{teacher id}`` for one given by ``--teacher``, so
    that its fine-tuned teacher, students, energy and reports never reuse another teacher's folders."""
    from spikebert.teachers.loading import DEFAULT_NAMES

    return "" if teacher in DEFAULT_NAMES else f"-{_teacher_id(teacher_path)}"


def _teacher_id(teacher_path: str) -> str:
    """The teacher's name in the stage-1 folder (a package's ``.../NAME/model`` is NAME)."""
    path = Path(teacher_path)
    return path.name if path.name != "model" else path.parent.name


def _as_shape(shape: StudentShape | Mapping | None) -> StudentShape:
    """A :class:`StudentShape` from a shape or a mapping of its fields (an unknown field is an error)."""
    if shape is None or isinstance(shape, StudentShape):
        return shape or StudentShape()
    try:
        return StudentShape(**shape)
    except TypeError:
        raise SpikeBertError(f"student shape {dict(shape)}: the fields are those of StudentShape "
                             f"({', '.join(f.name for f in fields(StudentShape))})") from None


def _run_data(task: str | None, data: Splits | None, data_dir, limit: int | None) -> Splits:
    """The run's data (a task's splits unless ``data`` is given), its training set cut to the
    preset's ``limit``."""
    from spikebert.data.tasks import task_splits

    if (task is None) == (data is None):
        raise SpikeBertError("give --task NAME or --train-file FILE (one of them)")
    data = data or task_splits(task, data_dir)
    if data.own:
        _check_name(data.train.name, data.record["train_file"])
    if limit is not None:
        data = replace(data, train=replace(data.train, examples=data.train.examples[:limit]))
    return data


def _check_name(name: str, train_file: str) -> None:
    """An own-data run's name is a folder of its own in the work folder: not a path, not a task's
    (whose folder it would share), not a shared stage's."""
    where = f"the run's name {name!r} (from {train_file}, or --name)"
    if not name or name in (".", "..") or any(c in name for c in "/\\"):
        raise SpikeBertError(f"{where} is not a folder name: pass --name NAME")
    if name in TASKS or name.startswith(("stage1-", "teacher-")):
        raise SpikeBertError(f"{where} is the folder of a task or of a shared stage: pass --name NAME")


def _teacher_source(r: _Run, teacher: str | None, language: str, corpus, data_dir) -> tuple[str, dict]:
    """The teacher to fine-tune and its fine-tuning settings: ``teacher`` (default: the MiniLM)
    for English; for another language without one, a BERT pre-trained from scratch (reported as
    the stage ``teacher_pretrain``)."""
    from spikebert.teachers.loading import resolve_teacher

    if teacher is not None or language == "en":
        return resolve_teacher(teacher), _given(epochs=r.p.teacher_epochs)
    path = str(scratch_teacher(language, r.work, r.preset, r.p, corpus, r.seed, r.log, data_dir, r.checkpoints))
    pm = _finished(Path(path)) or {}
    r.report["stages"]["teacher_pretrain"] = {
        "folder": path, "seconds": pm.get("seconds"), "steps": pm.get("steps"),
        "heldout_mlm_loss": pm.get("heldout_loss"), "texts": pm.get("texts")}
    return path, {"lr": r.p.scratch_finetune_lr, "epochs": r.p.scratch_finetune_epochs}


def _stage1_teacher(teacher: str | None, teacher_path: str, stage1_teacher: str | None, language: str,
                    texts: list[str], shape: StudentShape, log) -> tuple[str, str, StudentShape]:
    """Stage 1's teacher, the tag it adds to stage 2's folders and the stage-1 student's shape:
    ``run``'s own choice (:func:`_own_stage1_teacher`) with no tag and ``shape``; or a
    ``stage1_teacher`` that overrides it, tagged ``-stage1-{teacher id}`` so that the two students of
    one teacher never share (and reuse) a folder, and teaching the student the own choice would
    have shaped (``shape`` with the depth, width and heads it leaves open taken from that teacher):
    ``--stage1-teacher`` changes the teacher, never the student."""
    from spikebert.teachers.loading import load_teacher_config, resolve_teacher

    own = _own_stage1_teacher(teacher, teacher_path, language, texts,
                              log if stage1_teacher is None else (lambda _: None))
    if stage1_teacher is None:
        return own, "", shape
    given = resolve_teacher(stage1_teacher)
    log(f"[stage1] from {given} (--stage1-teacher)")
    if Path(given).resolve() == Path(own).resolve():
        return given, "", shape
    return given, f"-stage1-{_teacher_id(given)}", shape.like_teacher(load_teacher_config(own))


def _own_stage1_teacher(teacher: str | None, teacher_path: str, language: str, texts: list[str], log) -> str:
    """For an English teacher given by ``--teacher``, the default MiniLM when the two split the
    training texts alike: its stage 1 is shared with the language's other runs, and stage 2 moves
    its student to the teacher's tokens and width (:mod:`spikebert.distill.vocab`); otherwise the
    teacher itself."""
    from spikebert.distill.vocab import split_alike
    from spikebert.folders import load_tokenizer
    from spikebert.teachers.loading import DEFAULT_NAMES, default_teacher_path

    if teacher in DEFAULT_NAMES or language != "en":
        return teacher_path
    default = default_teacher_path()
    if not split_alike(load_tokenizer(default), load_tokenizer(teacher_path), texts):
        log(f"[stage1] from {teacher_path}: its tokenizer splits the texts unlike the default teacher's")
        return teacher_path
    log(f"[stage1] from the default teacher ({default}), which splits the texts as {teacher_path} does; "
        "stage 2 learns from the given teacher (--stage1-teacher to choose)")
    return default


def _check_student(stage1_path: str, stage1_shape: StudentShape, teacher_path: str, distill: DistillConfig,
                   stage1_config=None, teacher_config=None) -> None:
    """A student shape that cannot be built (``--width`` not a multiple of ``--heads``, levels for a
    neuron without them), ``--init-from-teacher`` and ``--w-attn`` refused before any stage runs
    when the shapes do not allow them (stage 1's student against stage 1's teacher; its heads
    against stage 2's teacher). The configs are read from the paths unless given (a teacher not
    yet pre-trained: :func:`_scratch_config`)."""
    from spikebert.distill.attention import check_heads
    from spikebert.distill.inherit import check_inheritable
    from spikebert.distill.losses import student_config
    from spikebert.teachers.loading import load_teacher_config

    stage1_config = stage1_config or load_teacher_config(stage1_path)
    student = student_config(stage1_config, stage1_shape)
    if distill.inherit:
        check_inheritable(student, stage1_config, stage1_path)
    if distill.weights.attn:
        check_heads(student, stage1_config, stage1_path)
        check_heads(student, teacher_config or load_teacher_config(teacher_path), teacher_path)


def _scratch_config(p: Preset):
    """The config the teacher pre-trained from scratch will have, but for its vocabulary (not
    known before its tokenizer is trained; the shape checks do not read it)."""
    from spikebert.teachers.pretrain import bert_config

    return bert_config(1, 0, **(_scratch_shape(p) or {}))


def _log_data(data: Splits, log) -> None:
    """Say what the run trains, selects and tests on (and that a dev split was cut, and how)."""
    train, dev, rec = data.train, data.dev, data.record
    log(f"[data] {train.name} ({train.language}{', ' + rec['language_from'] if data.own else ''}): "
        f"{train.num_labels} classes ({', '.join(train.labels)}), {len(train.examples)} training examples")
    cut = rec.get("dev_cut")
    if cut:
        log(f"[data] dev: a seeded, stratified {cut['fraction'] * 100:g} % cut of {rec['train_file']} "
            f"({len(dev.examples)} examples, seed {cut['seed']}; no --dev-file given)")
    else:
        log(f"[data] dev: {dev.source} ({len(dev.examples)} examples)")
    if data.test is not None:
        log(f"[data] test: {data.test.source} ({len(data.test.examples)} examples, evaluated once at the end)")


def run(task: str | None = None, *, data: Splits | None = None, workdir: str = "runs", preset: str = "cpu",
        teacher: str | None = None, stage1_teacher: str | None = None, corpus: list[str] | None = None,
        data_dir: str | None = None, seed: int = 42,
        shape: StudentShape | Mapping | None = None, w_spikes: float = LossWeights.spikes,
        w_energy: float = LossWeights.energy, w_attn: float = LossWeights.attn,
        init_from_teacher: bool = DistillConfig.inherit, eval_data=None, stage2_lr: float | None = None,
        energy: bool = True, html: bool = True, push_to_hub: str | None = None, private: bool = False,
        save_every: int | None = None, keep_checkpoints: int | None = None, log=print) -> dict:
    """The whole method for ``task``, or for ``data`` (the user's files, :func:`~spikebert.data.
    tasks.user_splits`), as the module docstring says; ``push_to_hub``: upload the student as
    that Hub repository at the end; ``w_attn``: attention distillation in both stages;
    ``init_from_teacher``: stage 1's student starts from its teacher's layers; ``eval_data``: a
    second labelled file evaluated after every stage-2 epoch (never selected on); ``stage2_lr``:
    stage 2's peak learning rate (None: the trainer's default; another gives the student's folders
    a ``-lr`` tag, :func:`lr_tag`); ``save_every``,
    ``keep_checkpoints``: every training stage's checkpointing (None: each stage's default; neither
    changes a result, so neither is part of a folder's tag). Returns the report it writes."""
    if preset not in PRESETS:
        raise SpikeBertError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    check_lr(stage2_lr, "--stage2-lr")
    p = PRESETS[preset]
    data = _run_data(task, data, data_dir, p.limit)
    train, dev = data.train, data.dev
    shape = _as_shape(shape).over(p.shape)
    if shape.spike_levels is not None and shape.neuron is None:  # before any folder is made
        raise SpikeBertError(f"--spike-levels applies to a neuron with levels: give --neuron int "
                             f"(the default neuron, {shape.neuron_name()}, has none)")
    distill = DistillConfig(weights=LossWeights(spikes=w_spikes, energy=w_energy, attn=w_attn), augment=AugmentConfig(
        **_given(copies=p.augment, seed=seed)), inherit=init_from_teacher)
    tag = run_tag(p.shape, shape, distill.weights, distill.inherit)
    r = _Run(train.name, preset, p, Path(workdir), seed, log, {"stages": {}},
             _given(save_every=save_every, keep_checkpoints=keep_checkpoints))
    _log_data(data, log)
    if data.own:
        r.claim(data)
    if teacher is None and train.language != "en" and stage1_teacher is None:  # before its minutes of pre-training
        scratch = _scratch_config(p)
        _check_student("the teacher pre-trained from scratch", shape, "the teacher pre-trained from scratch",
                       distill, scratch, scratch)
    teacher_path, finetune = _teacher_source(r, teacher, train.language, corpus, data_dir)
    r.report = {"task": train.name, "preset": preset, "shape": shape.given(), "distillation": distill.record(),
                "teacher": teacher_path, "language": train.language, "data": data.record, **r.report}
    teacher_tag = _teacher_tag(teacher, teacher_path)
    stage1_path, stage1_tag, stage1_shape = _stage1_teacher(teacher, teacher_path, stage1_teacher, train.language,
                                                            [ex.text for ex in train.examples], shape, log)
    _check_student(stage1_path, stage1_shape, teacher_path, distill)  # before any stage writes
    teacher_dir = r.teacher(train, dev, teacher_path, finetune, teacher_tag)
    r.report["stage1_teacher"] = stage1_path
    stage1_dir = r.stage1(stage1_path, corpus or default_corpus(train.language), stage1_shape, distill,
                          run_tag(p.shape, stage1_shape, distill.weights, distill.inherit))
    tag += teacher_tag + stage1_tag + lr_tag(stage2_lr)
    snn_dir, m2 = r.stage2(train, dev, teacher_dir, stage1_dir, shape, distill, tag, eval_data, stage2_lr)
    if "eval_file" in m2:
        r.report["eval_file"] = m2["eval_file"]
    r.report["teacher_dev_accuracy"] = (_finished(teacher_dir) or {}).get("dev_accuracy")
    r.report["snn_dev_accuracy"] = m2.get("dev_accuracy")
    e = r.energy(snn_dir, teacher_dir, dev, tag) if energy else find_energy(snn_dir)
    if e is not None:
        r.report["energy"] = {k: e[k] for k in ("snn_energy_mj", "ann_energy_mj", "energy_ratio", "firing_rate")}
        r.report["energy"]["dense_residual_ratio"] = e["snn_dense_residual"]["energy_ratio"]
        r.report["energy"]["paper_convention_ratio"] = e["conventions"]["paper"]["energy_ratio"]
        r.report["energy"]["input_encoding"] = e.get("input_encoding")
    if data.test is not None:
        r.report["test"] = r.test(data.test, snn_dir, teacher_dir)
    r.publish(data, snn_dir, teacher_dir, e, tag, html)
    if push_to_hub:
        from spikebert.card import push_to_hub as push

        r.report["pushed"] = push(snn_dir, push_to_hub, private=private)
        log(f"[push] {snn_dir} -> {r.report['pushed']}")
        write_json(r.folder / f"report{tag}.json", r.report)
    return r.report
