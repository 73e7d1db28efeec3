"""One self-contained HTML page about a trained student, to look at rather than read.

``spikebert report --model DIR`` (and the end of ``spikebert run``) writes a page holding the
training curves of every stage, the dev confusion matrix, the energy against the teacher, the
firing rates per layer and neuron group, and spike rasters of a few dev sentences. Every figure is
a PNG embedded as a ``data:`` URI: the page needs no server, no network and no other file.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from pathlib import Path

from spikebert.training.checkpoint import atomic_write_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:.5em 0}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}"""


def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _fig_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def confusion_png(metrics: dict) -> bytes:
    """The dev confusion matrix (rows gold, columns predicted) with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, m = metrics["labels"], metrics["confusion"]
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 * k + 2.5, 1.0 * k + 2))
    ax.imshow(m, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(m[i][j]), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"dev: accuracy {metrics['accuracy'] * 100:.2f} %, macro-F1 {metrics['macro_f1'] * 100:.2f} %")
    fig.tight_layout()
    return _fig_png(fig)


def _summary(metrics: dict | None, energy: dict | None, teacher_accuracy: float | None) -> str:
    rows = []
    if metrics:
        rows += [("dev accuracy", f"{metrics['accuracy'] * 100:.2f} %"),
                 ("dev macro-F1", f"{metrics['macro_f1'] * 100:.2f} %"), ("dev texts", str(metrics["n"]))]
    if teacher_accuracy is not None:
        rows.append(("teacher dev accuracy", f"{teacher_accuracy * 100:.2f} %"))
    if energy:
        rows += [("energy per sentence, SNN / teacher",
                  f"{energy['snn_energy_mj']:.3f} / {energy['ann_energy_mj']:.3f} mJ"),
                 ("energy ratio", f"{energy['energy_ratio'] * 100:.1f} %"),
                 ("mean firing rate", f"{energy['firing_rate'] * 100:.1f} %")]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _curves(stage_dirs: dict) -> list[str]:
    from spikebert.training.plots import plot_log

    parts = []
    for name, folder in stage_dirs.items():
        png = Path(folder) / "training.png"
        if not png.exists():
            plot_log(folder)
        if png.exists():
            parts.append(_img(png.read_bytes(), f"{name}: loss terms, learning rate and dev score ({folder})"))
    return parts or ["<p>No training log found.</p>"]


def _energy(energy: dict | None) -> list[str]:
    if not energy:
        return ["<p>No energy report (run <code>spikebert energy</code>).</p>"]
    from spikebert.analysis.energy import save_plots

    with tempfile.TemporaryDirectory() as tmp:
        paths = save_plots(energy, tmp)
        return [_img(Path(p).read_bytes(), Path(p).stem.replace("_", " ")) for p in paths]


def _rasters(model, tokenizer, texts: list[str], neurons: int) -> list[str]:
    from spikebert.analysis.raster import inspect_model

    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(texts):
            r = inspect_model(model, tokenizer, text, Path(tmp) / str(i), neurons=neurons)
            parts.append(f"<h3>“{html.escape(text)}”</h3>")
            parts += [_img(Path(f).read_bytes(), f"{Path(f).stem}: spikes per neuron (rows) and token × step")
                      for f in r["files"] if f.endswith(".png")]
    return parts


def write_report(output, model, tokenizer, *, title: str, dev_metrics: dict | None = None,
                 energy: dict | None = None, stage_dirs: dict | None = None, raster_texts: list[str] = (),
                 teacher_accuracy: float | None = None, neurons: int = 64) -> Path:
    """Write the page to ``output`` (atomically) and return its path. ``dev_metrics`` is
    :func:`spikebert.training.metrics.classification_metrics`'s dict, ``energy`` the report of
    :func:`spikebert.analysis.energy.measure`, ``stage_dirs`` ``{stage name: run folder}``."""
    import matplotlib

    matplotlib.use("Agg")
    body = [f"<h1>{html.escape(title)}</h1>", _summary(dev_metrics, energy, teacher_accuracy),
            "<h2>Training</h2>", *_curves(stage_dirs or {}),
            "<h2>Dev confusion matrix</h2>",
            _img(confusion_png(dev_metrics), "dev confusion matrix") if dev_metrics else "<p>No dev data given.</p>",
            "<h2>Energy against the teacher, firing rates</h2>", *_energy(energy),
            "<h2>Spike rasters of dev sentences</h2>", *(_rasters(model, tokenizer, list(raster_texts), neurons)
                                                        if raster_texts else ["<p>No texts given.</p>"])]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out
