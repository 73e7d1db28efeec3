"""Classification metrics and batched inference for any classifier this project saves."""

from __future__ import annotations

import torch

from spikebert.data.batching import EVAL_BATCH_SIZE, Encoded, make_loader


@torch.no_grad()
def predict_logits(model, dataset: Encoded, batch_size: int = EVAL_BATCH_SIZE, accelerator=None, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and dataset indices for every example, in dataset order. With an ``accelerator``
    the dataset is sharded over processes and the results gathered (every example once)."""
    from tqdm.auto import tqdm

    loader = make_loader(dataset, batch_size, shuffle=False)
    if accelerator is not None:
        loader = accelerator.prepare(loader)
    was_training = model.training
    model.eval()
    logits, index = [], []
    show = progress and (accelerator is None or accelerator.is_main_process)
    for batch in tqdm(loader, desc="evaluate", leave=False, disable=not show):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        lg, ix = out.logits.float(), batch["index"]
        if accelerator is not None:
            lg, ix = accelerator.gather_for_metrics((lg, ix))
        logits.append(lg.cpu())
        index.append(ix.cpu())
    model.train(was_training)
    logits, index = torch.cat(logits), torch.cat(index)
    order = torch.argsort(index)
    return logits[order], index[order]


def classification_metrics(pred: list[int] | torch.Tensor, gold: list[int] | torch.Tensor, labels: tuple[str, ...]) -> dict:
    pred = torch.as_tensor(pred).tolist()
    gold = torch.as_tensor(gold).tolist()
    k = len(labels)
    confusion = [[0] * k for _ in range(k)]
    for p, g in zip(pred, gold):
        confusion[g][p] += 1
    n = len(gold)
    correct = sum(confusion[i][i] for i in range(k))
    f1s = []
    for i in range(k):
        tp = confusion[i][i]
        fp = sum(confusion[j][i] for j in range(k)) - tp
        fn = sum(confusion[i]) - tp
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {
        "accuracy": correct / n if n else 0.0,
        "macro_f1": sum(f1s) / k if k else 0.0,
        "n": n,
        "per_class": {labels[i]: {"gold": sum(confusion[i]), "predicted": sum(confusion[j][i] for j in range(k)),
                                  "correct": confusion[i][i], "f1": f1s[i]} for i in range(k)},
        "confusion": confusion,
        "labels": list(labels),
    }


def evaluate_dataset(model, dataset: Encoded, labels: tuple[str, ...], batch_size: int = EVAL_BATCH_SIZE,
                     accelerator=None, progress: bool = False) -> dict:
    logits, _ = predict_logits(model, dataset, batch_size, accelerator, progress)
    return classification_metrics(logits.argmax(-1), dataset.labels, labels)


def format_report(m: dict) -> str:
    labels = m["labels"]
    w = max(8, *(len(x) for x in labels))
    lines = [f"accuracy {m['accuracy'] * 100:.2f}%   macro-F1 {m['macro_f1'] * 100:.2f}%   n {m['n']}", "",
             f"{'class':<{w}}  {'gold':>6} {'pred':>6} {'correct':>7} {'F1':>6}"]
    for name in labels:
        c = m["per_class"][name]
        lines.append(f"{name:<{w}}  {c['gold']:>6} {c['predicted']:>6} {c['correct']:>7} {c['f1'] * 100:>5.1f}%")
    lines += ["", "confusion (rows: gold, columns: predicted)",
              " " * (w + 2) + " ".join(f"{i:>6}" for i in range(len(labels)))]
    for i, name in enumerate(labels):
        lines.append(f"{name:<{w}}  " + " ".join(f"{v:>6}" for v in m["confusion"][i]))
    return "\n".join(lines)


def dev_evaluator(dev_set: Encoded, labels: tuple[str, ...], batch_size: int = EVAL_BATCH_SIZE):
    """An ``evaluate(model, accelerator)`` for :func:`spikebert.training.trainer.fit`: dev accuracy as the score."""

    def evaluate(model, accelerator=None):
        m = evaluate_dataset(model, dev_set, labels, batch_size, accelerator)
        return {"score": m["accuracy"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    return evaluate
