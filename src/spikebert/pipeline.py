"""``spikebert run``: the whole method for one task, every stage reused or resumed.

    {workdir}/{task}/teacher        fine-tuned teacher            (reused when finished)
    {workdir}/stage1-{teacher id}-{preset}{tag}  stage-1 student (reused across tasks of one teacher)
    {workdir}/{task}/snn{tag}       stage-2 student, the result
    {workdir}/{task}/energy{tag}    energy report and plots
    {workdir}/{task}/report{tag}.json  accuracy and time of every stage
    {workdir}/teacher-{lang}-{preset} a BERT pre-trained from scratch (tokenizer and MLM), for a
                                    language with no installed teacher; shared by its tasks

``{tag}`` names the student-shape flags that differ from the preset (``-T8``, ``-L12-W768``...)
and is empty without them, so students of different shapes never reuse each other's folders. A
stage whose folder has ``metrics.json`` is finished and reused; an unfinished one resumes from
its last checkpoint. The stage-1 corpus is ``--corpus`` or, by default, every ``*.txt`` in
``$SPIKEBERT_CORPORA/<language>/``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from spikebert.training.checkpoint import write_json
from spikebert.errors import SpikeBertError

CORPORA_ENV = "SPIKEBERT_CORPORA"
DEFAULT_AUGMENT = 1


@dataclass(frozen=True)
class Preset:
    """Everything `run` decides on its own. ``shape`` overrides the teacher-shaped student."""

    shape: dict
    teacher_epochs: float = 2.0
    stage1_epochs: float = 1.0
    stage1_max_texts: int | None = 40000
    stage1_max_minutes: float | None = None
    stage1_max_length: int = 64  # the corpus is cut to task-like lengths: SST-2 averages 25 tokens
    stage2_epochs: float = 2.0
    augment: int = DEFAULT_AUGMENT
    batch_size: int = 32
    max_length: int = 128
    limit: int | None = None
    teacher_max_steps: int | None = None
    stage1_max_steps: int | None = None
    stage2_max_steps: int | None = None
    # a teacher from scratch (languages without an installed BERT): MLM pre-training budget and
    # the fine-tuning learning rate such a small teacher needs
    scratch_epochs: float | None = 1.0
    scratch_minutes: float | None = 45.0
    scratch_max_steps: int | None = None
    scratch_shape: dict | None = None
    scratch_finetune_lr: float = 3e-4
    scratch_finetune_epochs: float = 3.0


PRESETS = {
    # the best accuracy per CPU hour measured on 2 cores: the student mirrors the MiniLM teacher
    "cpu": Preset(shape=dict(time_steps=4)),
    # the paper's scale, for GPUs: BERT-base-shaped student, T=4, full corpus
    "paper": Preset(shape=dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, time_steps=4),
                    stage1_max_texts=None, stage1_max_minutes=None, stage2_epochs=5.0, augment=8),
    # a few steps of everything: smoke tests and trying the tool out
    "tiny": Preset(shape=dict(num_hidden_layers=1, hidden_size=64, num_attention_heads=4, time_steps=2),
                   teacher_epochs=1.0, stage1_max_texts=64, stage1_max_minutes=None, stage2_epochs=1.0, augment=1,
                   batch_size=16, max_length=48, limit=96, teacher_max_steps=4, stage1_max_steps=3,
                   stage2_max_steps=6, scratch_minutes=None, scratch_max_steps=3,
                   scratch_shape=dict(layers=1, hidden=64, heads=4)),
}


# short names of the student-shape fields, for the folder tag of a run that overrides them
SHAPE_TAGS = {"num_hidden_layers": "L", "hidden_size": "W", "num_attention_heads": "H", "time_steps": "T",
              "tau": "tau", "threshold": "th", "position_embeddings": "pos"}


def shape_tag(preset_shape: dict, shape: dict) -> str:
    """``-T8`` for a run with ``--time-steps 8`` over a T=4 preset; ``""`` when nothing differs.
    Fields come in the order of SHAPE_TAGS, so one shape always names one folder."""
    def part(tag, v):
        if isinstance(v, bool):
            return f"-{tag}" if v else f"-no{tag}"
        return f"-{tag}{v:g}" if isinstance(v, float) else f"-{tag}{v}"

    return "".join(part(tag, shape[k]) for k, tag in SHAPE_TAGS.items()
                   if k in shape and preset_shape.get(k) != shape[k])


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
    from spikebert.training.trainer import TrainArgs
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
    pretrain_teacher(texts, str(tokenizer_dir), TrainArgs(**{
        **PRETRAIN_DEFAULTS, "output": str(folder), "seed": seed, "epochs": p.scratch_epochs,
        "max_minutes": p.scratch_minutes, "max_steps": p.scratch_max_steps, "batch_size": p.batch_size,
        "resume": True}), shape=p.scratch_shape, max_length=p.max_length, sources=sources)
    return folder


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


def run(task: str, workdir: str = "runs", preset: str = "cpu", teacher: str | None = None,
        corpus: list[str] | None = None, data_dir: str | None = None, seed: int = 42,
        shape: dict | None = None, energy: bool = True, log=print) -> dict:
    from spikebert.data.tasks import load_data
    from spikebert.folders import resolve_teacher
    from spikebert.distill.stages import STAGE1_DEFAULTS, STAGE2_DEFAULTS, pretrain_distill, task_distill
    from spikebert.teachers.finetune import TEACHER_DEFAULTS, finetune_teacher
    from spikebert.training.trainer import TrainArgs
    from spikebert.distill.augment import AugmentConfig

    if preset not in PRESETS:
        raise SpikeBertError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    p = PRESETS[preset]
    shape = {**p.shape, **(shape or {})}
    tag = shape_tag(p.shape, shape)
    train = load_data(task, "train", data_dir, limit=p.limit)
    dev = load_data(task, "dev", data_dir)
    work = Path(workdir)
    finetune = {"epochs": p.teacher_epochs}
    scratch = teacher is None and train.language != "en"
    if scratch:
        teacher = str(scratch_teacher(train.language, work, preset, p, corpus, seed, log, data_dir))
        finetune = {"lr": p.scratch_finetune_lr, "epochs": p.scratch_finetune_epochs}
    teacher_path = resolve_teacher(teacher)
    teacher_id = Path(teacher_path).name if Path(teacher_path).name != "model" else Path(teacher_path).parent.name
    report: dict = {"task": task, "preset": preset, "shape": shape, "teacher": teacher_path, "stages": {}}
    if scratch:  # the teacher was pre-trained here: its stage is part of the run
        pm = _finished(Path(teacher_path)) or {}
        report["stages"]["teacher_pretrain"] = {"folder": teacher_path, "seconds": pm.get("seconds"),
                                                "steps": pm.get("steps"), "heldout_mlm_loss": pm.get("heldout_loss"),
                                                "texts": pm.get("texts")}
    times = {}

    def stage(name, folder, job):
        done = _finished(folder)
        if done is not None:
            log(f"[{name}] reusing {folder}")
            report["stages"][name] = {"folder": str(folder), "reused": True, "seconds": done.get("seconds"),
                                      "dev_accuracy": done.get("dev_accuracy")}
            return done
        log(f"[{name}] -> {folder}")
        t0 = time.time()
        m = job()
        times[name] = time.time() - t0
        report["stages"][name] = {"folder": str(folder), "reused": False, "seconds": round(m.get("seconds", times[name]), 1),
                                  "dev_accuracy": m.get("dev_accuracy")}
        return m

    teacher_dir = work / task / "teacher"
    stage("teacher", teacher_dir, lambda: finetune_teacher(train, dev, TrainArgs(**{
        **TEACHER_DEFAULTS, **finetune, "output": str(teacher_dir), "seed": seed,
        "max_steps": p.teacher_max_steps, "batch_size": p.batch_size, "resume": True}), teacher_path, p.max_length))

    stage1_dir = work / f"stage1-{teacher_id}-{preset}{tag}"
    files = corpus or default_corpus(train.language)
    stage("stage1", stage1_dir, lambda: pretrain_distill(teacher_path, files, TrainArgs(**{
        **STAGE1_DEFAULTS, "output": str(stage1_dir), "seed": seed, "epochs": p.stage1_epochs,
        "max_steps": p.stage1_max_steps, "max_minutes": p.stage1_max_minutes, "batch_size": p.batch_size,
        "resume": True}), shape, min(p.stage1_max_length, p.max_length), None, p.stage1_max_texts, shuffle_seed=seed))

    snn_dir = work / task / f"snn{tag}"
    m2 = stage("stage2", snn_dir, lambda: task_distill(train, dev, str(teacher_dir), TrainArgs(**{
        **STAGE2_DEFAULTS, "output": str(snn_dir), "seed": seed, "epochs": p.stage2_epochs,
        "max_steps": p.stage2_max_steps, "batch_size": p.batch_size, "resume": True}), init=str(stage1_dir),
        shape=shape, augment_cfg=AugmentConfig(copies=p.augment, seed=seed), max_length=p.max_length,
        cache_dir=str(work / task)))
    t_metrics = _finished(teacher_dir) or {}
    report["teacher_dev_accuracy"] = t_metrics.get("dev_accuracy")
    report["snn_dev_accuracy"] = m2.get("dev_accuracy")

    if energy:
        from spikebert.analysis.energy import measure, save_plots
        from spikebert.folders import load_classifier

        snn, tokenizer = load_classifier(snn_dir)
        ann, ann_tokenizer = load_classifier(teacher_dir)
        e = measure(snn, tokenizer, [ex.text for ex in dev.examples], [ex.label for ex in dev.examples], ann=ann,
                    ann_tokenizer=ann_tokenizer, max_length=p.max_length, reference=str(teacher_dir))
        energy_dir = work / task / f"energy{tag}"
        energy_dir.mkdir(parents=True, exist_ok=True)
        e["plots"] = save_plots(e, energy_dir)
        write_json(energy_dir / "energy.json", e)
        report["energy"] = {k: e[k] for k in ("snn_energy_mj", "ann_energy_mj", "energy_ratio", "firing_rate")}
        report["energy"]["dense_residual_ratio"] = e["snn_dense_residual"]["energy_ratio"]
    write_json(work / task / f"report{tag}.json", report)
    return report
