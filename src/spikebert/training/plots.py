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
    finished; with the run's ``environment``, :func:`spikebert.training.device.environment`) added
    to the folder's manifest, ``training.png`` and, in a model folder, its model card
    ``README.md``; written once, by the main process. Returns ``metrics``."""
    from spikebert.card import write_model_card
    from spikebert.training.checkpoint import write_json
    from spikebert.training.device import environment
    from spikebert.training.manifest import add_to_manifest

    metrics.setdefault("environment", environment(accelerator))
    if accelerator is None or accelerator.is_main_process:
        write_json(Path(output) / "metrics.json", metrics)
        add_to_manifest(output, ["metrics.json"])
        plot_log(output)
        if (Path(output) / "config.json").is_file():
            write_model_card(output)
    return metrics


def finished_metrics(folder, log=print) -> dict | None:
    """A job folder's ``metrics.json`` when the job finished and the folder verifies against its
    manifest; None when it did not finish. A ``metrics.json`` that is damaged (or unreadable, in a
    folder an older version wrote without a manifest) marks the job unfinished, with one line
    saying so: it resumes from its checkpoint and writes it again. Any other damaged file (the
    weights) is one clear error: the checkpoints cannot give the best model back."""
    from spikebert.errors import SpikeBertError
    from spikebert.training.manifest import has_manifest, verify

    folder = Path(folder)
    path = folder / "metrics.json"
    if not path.exists():
        return None
    problems = verify(folder) if has_manifest(folder) else []
    metrics = None
    if not problems:
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            problems = [f"{path}: unreadable ({type(e).__name__})"]
    if not problems and isinstance(metrics, dict):
        return metrics
    others = [p for p in problems if not p.startswith(str(path))]
    if others:
        raise SpikeBertError(f"{others[0]}: {folder} is damaged; restore it from a copy, or delete it to run "
                             "its stage again")
    log(f"{problems[0] if problems else f'{path}: not a JSON object'}: {folder} is taken as unfinished and "
        "resumed from its last checkpoint")
    return None
