"""Pictures of a training run: ``training.png`` from its ``log.jsonl`` (loss terms and learning
rate against steps, dev accuracy where it was measured)."""

from __future__ import annotations

import json
from pathlib import Path


def plot_log(folder, name: str = "training.png") -> Path | None:
    """Plot ``folder/log.jsonl`` into ``folder/name``; returns the path (None without a log)."""
    folder = Path(folder)
    log = folder / "log.jsonl"
    if not log.exists():
        return None
    rows = [json.loads(ln) for ln in log.read_text().splitlines() if ln.strip()]
    train = [r for r in rows if "loss" in r]
    dev = [r for r in rows if "dev_score" in r]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    terms = [k for k in train[-1] if k not in ("step", "epoch", "lr")]
    fig, axes = plt.subplots(1, 3 if dev else 2, figsize=(15 if dev else 10, 4))
    steps = [r["step"] for r in train]
    for k in terms:
        axes[0].plot(steps, [r.get(k) for r in train], label=k, lw=1)
    axes[0].set(xlabel="step", ylabel="loss", title="training loss (terms unweighted)", yscale="log")
    axes[0].legend(fontsize=7)
    axes[1].plot(steps, [r["lr"] for r in train])
    axes[1].set(xlabel="step", title="learning rate")
    if dev:
        key = "dev_accuracy" if "dev_accuracy" in dev[0] else "dev_score"
        axes[2].plot([r["step"] for r in dev], [100 * r[key] for r in dev], "o-")
        axes[2].set(xlabel="step", ylabel="%", title=key.replace("_", " "))
    fig.suptitle(folder.name)
    fig.tight_layout()
    out = folder / name
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def finish_job(output, metrics: dict, accelerator=None) -> dict:
    """The end of every training job: ``metrics.json`` (atomically; its presence marks the job
    finished), ``training.png`` and, in a model folder, its model card ``README.md``; written
    once, by the main process. Returns ``metrics``."""
    from spikebert.card import write_model_card
    from spikebert.training.checkpoint import write_json

    if accelerator is None or accelerator.is_main_process:
        write_json(Path(output) / "metrics.json", metrics)
        plot_log(output)
        if (Path(output) / "config.json").is_file():
            write_model_card(output)
    return metrics
