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

from spikebert.analysis.energy.plots import multibit, neuron_label
from spikebert.training.checkpoint import atomic_write_text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.row{display:grid;gap:1em;margin:1em 0}.row figure{margin:0;min-width:0}
img{width:100%;height:auto;display:block;margin:.5em 0}figcaption{color:#555;font-size:.9em}"""
# figures side by side in a row of each section: every figure of a row is one width, whatever
# size matplotlib drew it at (the wide training curves take a row each)
WIDE, SIDE_BY_SIDE = 1, 2


def _img(png: bytes, caption: str) -> str:
    """An embedded PNG (a ``data:`` URI) with its caption."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _row(figures: list[str], columns: int = SIDE_BY_SIDE) -> str:
    """Figures (:func:`_img`) in rows of ``columns`` equal cells: every picture of the row is shown
    at the cell's width, so a row's plots are one size."""
    return (f'<div class="row" style="grid-template-columns:repeat({columns},minmax(0,1fr))">'
            + "".join(figures) + "</div>")


def _fig_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
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
    """The table at the top: dev figures, the teacher's, the energy."""
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
        if multibit(energy):  # spikes of more than one bit: the rate is a mean level
            rows[-1] = ("mean spike level per neuron and step", f"{energy['firing_rate']:.3f}")
            rows += [("neuron", neuron_label(energy)),
                     ("non-zero outputs", f"{energy['nonzero_share'] * 100:.1f} %")]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _curves(stage_dirs: dict) -> list[str]:
    """Every stage's ``training.png`` (plotted from its log when missing)."""
    from spikebert.training.plots import plot_log

    parts = []
    for name, folder in stage_dirs.items():
        png = Path(folder) / "training.png"
        if not png.exists():
            plot_log(folder)
        if png.exists():
            parts.append(_img(png.read_bytes(), f"{name}: loss terms, learning rate and dev score ({folder})"))
    return [_row(parts, WIDE)] if parts else ["<p>No training log found.</p>"]


def _energy(energy: dict | None) -> list[str]:
    """The energy and firing-rate plots of an energy report."""
    if not energy:
        return ["<p>No energy report (run <code>spikebert energy</code>).</p>"]
    from spikebert.analysis.energy import save_plots

    with tempfile.TemporaryDirectory() as tmp:
        paths = save_plots(energy, tmp)
        return [_row([_img(Path(p).read_bytes(), Path(p).stem.replace("_", " ")) for p in paths])]


# fonts with CJK glyphs, tried after matplotlib's own for the tokens under a raster
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC", "AR PL UMing CN")


def _token_fonts():
    """A matplotlib context whose font falls back to an installed CJK font (Chinese tokens would
    be empty boxes otherwise) and which keeps quiet about glyphs no font has."""
    import contextlib
    import warnings

    import matplotlib
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    stack = contextlib.ExitStack()
    stack.enter_context(matplotlib.rc_context(
        {"font.family": [*matplotlib.rcParams["font.family"], *(n for n in CJK_FONTS if n in have)]}))
    stack.enter_context(warnings.catch_warnings())
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
    return stack


def _rasters(model, tokenizer, texts: list[str], neurons: int) -> list[str]:
    """The spike rasters of each text, one picture per layer."""
    from spikebert.analysis.raster import inspect_model

    parts = []
    with tempfile.TemporaryDirectory() as tmp, _token_fonts():
        for i, text in enumerate(texts):
            r = inspect_model(model, tokenizer, text, Path(tmp) / str(i), neurons=neurons)
            parts.append(f"<h3>“{html.escape(text)}”</h3>")
            parts.append(_row([_img(Path(f).read_bytes(), f"{Path(f).stem}: spikes per neuron (rows) and token × step")
                               for f in r["files"] if f.endswith(".png")]))
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
            _row([_img(confusion_png(dev_metrics), "dev confusion matrix")]) if dev_metrics
            else "<p>No dev data given.</p>",
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


# ---------------------------------------------------------------------------------------------
# The page of a model folder: what ``spikebert report`` and the end of ``spikebert run`` write

STAGE_NAMES = {"teacher_pretrain": "teacher pre-training (masked LM)", "teacher": "teacher fine-tuning",
               "stage1": "stage 1 (pre-distillation)", "stage2": "stage 2 (task distillation)",
               "direct": "direct training"}
ENERGY_TEXTS = 256  # dev texts the energy is measured on when no energy report is found
RASTER_TEXTS = 2  # dev sentences whose spikes the page shows


def read_metrics(folder) -> dict | None:
    """A finished job folder's ``metrics.json`` (None when there is none)."""
    import json

    path = Path(folder) / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def stage_dirs(model_dir) -> dict[str, Path]:
    """Every training stage behind a model folder, first to last, ``{stage name: folder}``: found
    by following the ``teacher`` and ``init`` keys of each ``metrics.json`` to local folders."""
    found: dict[str, Path] = {}
    seen: set[Path] = set()

    def visit(folder: Path) -> None:
        """Add ``folder``'s stage after the stages it was made from."""
        m = read_metrics(folder)
        if m is None or folder.resolve() in seen:
            return
        seen.add(folder.resolve())
        for key in ("teacher", "init"):
            if isinstance(m.get(key), str) and Path(m[key]).is_dir():
                visit(Path(m[key]))
        found.setdefault(STAGE_NAMES.get(m.get("kind"), m.get("kind") or folder.name), folder)

    visit(Path(model_dir))
    return found


def find_energy(model_dir) -> dict | None:
    """An energy report of this model made after its weights: ``{run}/energy{tag}/energy.json``
    beside a run's ``snn{tag}`` folder, or ``<model>/energy/energy.json`` (``spikebert energy``)."""
    import json

    model_dir = Path(model_dir)
    places = [model_dir / "energy" / "energy.json"]
    if model_dir.name.startswith("snn"):
        places.insert(0, model_dir.parent / f"energy{model_dir.name[3:]}" / "energy.json")
    weights = model_dir / "model.safetensors"
    for path in places:
        if path.is_file() and (not weights.exists() or path.stat().st_mtime >= weights.stat().st_mtime):
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def evaluate_model(model, tokenizer, data, max_length: int) -> dict:
    """Accuracy, macro-F1, per-class counts and confusion of a loaded classifier on ``data``
    (a :class:`~spikebert.data.tasks.TaskData`)."""
    from spikebert.data.batching import encode_examples
    from spikebert.training.metrics import evaluate_dataset

    return evaluate_dataset(model, encode_examples(tokenizer, data.examples, max_length), data.labels)


def _measure_energy(model, tokenizer, dev, teacher_dir, max_length: int, n: int) -> dict:
    """The energy on up to ``n`` dev texts against the teacher folder (a BERT of the teacher's
    shape when it cannot be loaded)."""
    from spikebert.analysis.energy import measure
    from spikebert.errors import SpikeBertError
    from spikebert.teachers.loading import load_teacher

    ann = ann_tokenizer = None
    if teacher_dir is not None:
        try:
            ann, ann_tokenizer = load_teacher(teacher_dir, head="classifier", labels=dev.labels)
        except SpikeBertError:
            teacher_dir = None
    examples = dev.examples[:n]
    return measure(model, tokenizer, [ex.text for ex in examples], [ex.label for ex in examples], ann=ann,
                   ann_tokenizer=ann_tokenizer, max_length=max_length, timing=False,
                   reference=str(teacher_dir) if teacher_dir else "")


def model_report(model_dir, dev, output, *, energy: dict | None = None, teacher_accuracy: float | None = None,
                 max_length: int | None = None, energy_texts: int = ENERGY_TEXTS, rasters: int = RASTER_TEXTS,
                 title: str | None = None) -> Path:
    """The page of a SpikeBERT model folder evaluated on ``dev`` (a TaskData, or None): curves of
    every stage behind it (:func:`stage_dirs`), the dev confusion matrix, the energy (``energy``,
    else :func:`find_energy`, else measured on ``energy_texts`` dev texts against the teacher of
    its ``metrics.json``), firing rates and the rasters of ``rasters`` dev sentences."""
    from spikebert.data.batching import MAX_LENGTH
    from spikebert.errors import SpikeBertError
    from spikebert.folders import is_spikebert, load_classifier

    model, tokenizer = load_classifier(model_dir)
    if not is_spikebert(model):
        raise SpikeBertError(f"{model_dir}: a {model.config.model_type} model has no spiking neurons; "
                             "the report needs a SpikeBERT model")
    metrics = read_metrics(model_dir) or {}
    max_length = max_length or metrics.get("max_length") or MAX_LENGTH
    stages = stage_dirs(model_dir)
    teacher = stages.get(STAGE_NAMES["teacher"])
    dev_metrics = evaluate_model(model, tokenizer, dev, max_length) if dev is not None else None
    energy = energy or find_energy(model_dir)
    if energy is None and dev is not None:
        energy = _measure_energy(model, tokenizer, dev, teacher, max_length, energy_texts)
    texts = [ex.text for ex in dev.examples[:rasters]] if dev is not None else []
    title = title or f"SpikeBERT on {metrics.get('task', 'text classification')}: {Path(model_dir).name}"
    return write_report(output, model, tokenizer, title=title, dev_metrics=dev_metrics, energy=energy,
                        stage_dirs=stages, raster_texts=texts, teacher_accuracy=teacher_accuracy)
