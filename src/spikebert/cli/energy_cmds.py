"""``spikebert energy``, ``spikebert predict`` and ``spikebert inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from spikebert.cli import app
from spikebert.analysis.energy import E_AC_PJ, E_MAC_PJ
from spikebert.neurons.encoding import INPUT_GROUP
from spikebert.data.batching import MAX_LENGTH
from spikebert.errors import SpikeBertError
from spikebert.cli.options import BatchSize, DataDir, File, Json, MaxLength, Model, Output, Split, Task, TextColumn, TimeSteps

Teacher = Annotated[Optional[str], typer.Option(
    "--teacher", help="count (and time) this BERT folder as the ANN reference ('default': the MiniLM); "
                      "without it: a BERT of the teacher's shape with the student's depth")]
EMac = Annotated[float, typer.Option("--e-mac", help="energy of one multiply-accumulate, pJ (45 nm)")]
EAc = Annotated[float, typer.Option("--e-ac", help="energy of one accumulate, pJ (45 nm)")]
EnergyOutput = Annotated[Optional[str], typer.Option(
    "--output", "-o", help="folder for plots and energy.json (default: <model>/energy)")]
TextLimit = Annotated[Optional[int], typer.Option("--limit", help="use only the first N texts")]
Timing = Annotated[bool, typer.Option("--timing/--no-timing", help="also measure CPU inference time")]
Texts = Annotated[Optional[list[str]], typer.Argument(help="texts to label", show_default=False)]
Text = Annotated[str, typer.Argument(help="the text to look at")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads for the run (default: torch's)")]
Neurons = Annotated[int, typer.Option(
    "--neurons", help="neurons shown per group in the pictures (0: all; the .npz keeps all)")]


def _load_snn(model_dir: str, what: str, time_steps: int | None = None):
    """A saved SpikeBERT model, run at ``time_steps`` when given (T owns no weights)."""
    from spikebert.folders import check_model_folder, is_spikebert, load_classifier

    config = check_model_folder(model_dir)
    if not is_spikebert(config):
        raise SpikeBertError(f"{model_dir}: a {config['model_type']} model has no spiking neurons; "
                             f"{what} needs a SpikeBERT model")
    return load_classifier(model_dir, time_steps=time_steps)


def _si(x: float) -> str:
    """A count with an SI suffix (``1.23G``)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def _format_report(r: dict) -> str:
    """The human-readable table: per layer and in total, per sentence."""
    head = f"{'layer':<8} {'rate':>6} {'SNN MACs':>9} {'SNN ACs':>9} {'SNN mJ':>9} {'ANN MACs':>9} {'ANN mJ':>9}"
    lines = [f"{r['n']} sentences, {r['tokens_per_sentence']:.1f} tokens on average, T = {r['time_steps']}; "
             f"per sentence, E_MAC = {r['e_mac_pj']} pJ, E_AC = {r['e_ac_pj']} pJ",
             f"ANN reference: {r['ann']['reference']} ({r['ann']['layers']} layers, width {r['ann']['hidden']}, "
             f"intermediate {r['ann']['intermediate']})", "", head, "-" * len(head)]

    def cell(row, key, fmt):
        """A table cell of ``row``, or ``-`` when the row has no such value."""
        return fmt(row[key]) if key in row else "-"

    for row in r["layers"]:
        lines.append(f"{row['layer']:<8} {cell(row, 'firing_rate', lambda v: f'{v:.3f}'):>6} "
                     f"{cell(row, 'snn_macs', _si):>9} {cell(row, 'snn_acs', _si):>9} "
                     f"{cell(row, 'snn_energy_mj', lambda v: f'{v:.4f}'):>9} {cell(row, 'ann_macs', _si):>9} "
                     f"{cell(row, 'ann_energy_mj', lambda v: f'{v:.4f}'):>9}")
    lines += ["-" * len(head),
              f"{'total':<8} {r['firing_rate']:>6.3f} {_si(r['snn']['macs']):>9} {_si(r['snn']['acs']):>9} "
              f"{r['snn_energy_mj']:>9.4f} {_si(r['ann']['macs']):>9} {r['ann_energy_mj']:>9.4f}", "",
              f"SNN / ANN energy: {r['energy_ratio']:.2%}  ({r['snn_energy_mj']:.4f} mJ vs {r['ann_energy_mj']:.4f} mJ"
              " per sentence, estimated)",
              f"  (the headline is the {r['headline']['convention']} rule: {r['headline']['why']})",
              f"  on the paper's convention (first layer as MACs, every other synaptic operation an AC at its "
              f"firing rate): {r['conventions']['paper']['energy_ratio']:.2%}",
              f"  counting the residual stream as a dense input at every step instead: "
              f"{r['snn_dense_residual']['energy_ratio']:.2%} ({r['snn_dense_residual']['energy_mj']:.4f} mJ)",
              f"  against a BERT-base (12 x 768) on these texts: strict {r['conventions']['strict']['bert_base_ratio']:.2%}, "
              f"paper's convention {r['conventions']['paper']['bert_base_ratio']:.2%} (the paper: "
              f"{r['paper_figures']['snn_energy_mj']:.2f} / {r['paper_figures']['ann_energy_mj']:.2f} mJ = "
              f"{r['paper_figures']['energy_ratio']:.1%})",
              f"input encoding {r['input_encoding']}"
              + (f", input firing rate {r['group_firing_rates'][INPUT_GROUP]:.2%}" if INPUT_GROUP in r['group_firing_rates']
                 else "")]
    if r.get("nonzero_share") is not None and r["nonzero_share"] != r["firing_rate"]:
        lines.append(f"neuron {r['neuron']}: mean spike level {r['firing_rate']:.3f} per neuron and step (the rate "
                     f"column), non-zero outputs {r['nonzero_share']:.2%}; a level of k counts k accumulates")
    if "accuracy" in r:
        lines.append(f"SNN accuracy on these texts: {r['accuracy']:.2%}")
    if "timing" in r:
        t = r["timing"]
        lines += [f"CPU time per sentence: SNN {t['snn_ms_per_sentence']:.2f} ms, ANN "
                  f"{t['ann_ms_per_sentence']:.2f} ms (batch {t['batch_size']}, {t['threads']} threads)",
                  f"  {t['note']}"]
    return "\n".join(lines)


@app.command("energy")
def energy_cmd(model: Model, task: Task = None, split: Split = "dev", file: File = None, data_dir: DataDir = None,
               text_column: TextColumn = "text", teacher: Teacher = None, e_mac: EMac = E_MAC_PJ, e_ac: EAc = E_AC_PJ,
               output: EnergyOutput = None, batch_size: BatchSize = None, max_length: MaxLength = MAX_LENGTH,
               limit: TextLimit = None, timing: Timing = True, threads: Threads = None, time_steps: TimeSteps = None,
               json_out: Json = False):
    """Firing rates, operation counts and estimated energy of a SpikeBERT model against a BERT. The
    model runs at its own T unless --time-steps says otherwise (T owns no weights)."""
    from spikebert.analysis.energy import measure, save_plots
    from spikebert.data.tasks import load_data
    from spikebert.predict import BATCH_SIZE, read_texts
    from spikebert.teachers.loading import load_teacher, resolve_teacher
    from spikebert.training.checkpoint import write_json

    if e_mac <= 0 or e_ac <= 0:
        raise SpikeBertError("--e-mac and --e-ac must be positive")
    if task is None and not file:
        raise SpikeBertError("give --task NAME (with --split or --file) or --file PATH")
    if task is None:
        texts, labels = read_texts(file, text_column), None
    else:
        data = load_data(task=task, split=split, data_dir=data_dir, file=file)
        texts, labels = [ex.text for ex in data.examples], [ex.label for ex in data.examples]
    if limit is not None:
        if limit < 1:
            raise SpikeBertError(f"--limit must be >= 1 (got {limit})")
        texts, labels = texts[:limit], labels and labels[:limit]
    if threads is not None:
        if threads < 1:
            raise SpikeBertError(f"--threads must be >= 1 (got {threads})")
        import torch

        torch.set_num_threads(threads)
    snn, tokenizer = _load_snn(model, "energy", time_steps)
    ann, ann_tokenizer, reference = None, None, ""
    if teacher is not None:  # a classifier, or a bare encoder given a fresh head (irrelevant to counts and time)
        path = resolve_teacher(teacher)
        ann, ann_tokenizer = load_teacher(path, head="new-classifier", need_tokenizer=False)
        reference = f"teacher {path}"
    report = measure(snn, tokenizer, texts, labels, ann=ann, ann_tokenizer=ann_tokenizer,
                     batch_size=BATCH_SIZE if batch_size is None else batch_size, max_length=max_length,
                     e_mac=e_mac, e_ac=e_ac, timing=timing, reference=reference)
    out = Path(output) if output else Path(model) / "energy"
    report["model"] = str(model)
    report["plots"] = save_plots(report, out)
    write_json(out / "energy.json", report)
    if json_out:
        print(json.dumps(report))
    else:
        print(_format_report(report))
        print(f"plots and energy.json in {out}")


@app.command("predict")
def predict_cmd(model: Model, texts: Texts = None, file: Annotated[Optional[str], typer.Option(
                    "--file", help="texts to label: one a line, or a CSV/TSV/JSONL file's --text-column")] = None,
                text_column: TextColumn = "text", batch_size: BatchSize = None, max_length: MaxLength = MAX_LENGTH,
                time_steps: TimeSteps = None, json_out: Json = False):
    """Label texts with a saved classifier (SpikeBERT or BERT): label, score and probabilities."""
    from spikebert.predict import BATCH_SIZE, Classifier, read_texts

    if bool(texts) == bool(file):
        raise SpikeBertError("give texts to label, or --file PATH (not both)")
    items = list(texts) if texts else read_texts(file, text_column)
    clf = Classifier.from_pretrained(model, batch_size=BATCH_SIZE if batch_size is None else batch_size, max_length=max_length,
                                     time_steps=time_steps)
    results = clf.predict(items)
    if json_out:
        print(json.dumps({"model": str(model), "labels": clf.labels,
                          "predictions": [{"text": t, **r} for t, r in zip(items, results)]}, ensure_ascii=False))
        return
    for t, r in zip(items, results):
        probs = " ".join(f"{k}={v:.3f}" for k, v in r["probabilities"].items())
        print(f"{r['label']}\t{r['score']:.3f}\t{t}\t[{probs}]")


@app.command("inspect")
def inspect_cmd(model: Model, text: Text, output: Output, neurons: Neurons = 128, max_length: MaxLength = MAX_LENGTH,
                time_steps: TimeSteps = None, json_out: Json = False):
    """Save spike rasters (neurons × time steps × tokens, per layer) of one text as PNG and .npz."""
    from spikebert.analysis.raster import inspect_model

    if neurons < 0:
        raise SpikeBertError(f"--neurons must be >= 0 (got {neurons})")
    snn, tokenizer = _load_snn(model, "inspect", time_steps)
    result = inspect_model(snn, tokenizer, text, output, neurons=neurons, max_length=max_length)
    if json_out:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(f"{len(result['tokens'])} tokens: {' '.join(result['tokens'])}")
    for name, rate in result["firing_rates"].items():
        print(f"{name:<14} firing rate {rate:.3f}")
    print(f"rasters in {output}: " + ", ".join(Path(p).name for p in result["files"]))
