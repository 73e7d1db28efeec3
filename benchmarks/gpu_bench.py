"""Training and inference speed of this project's student on one device, side by side with the
official SpikeBERT model, and the host's share of a real stage-1 and stage-2 step (not a test: it
measures).

    python benchmarks/gpu_bench.py --out bench.json                            # ours alone, on CUDA
    python benchmarks/gpu_bench.py --official ~/SpikeBERT --out bench.json     # and the official model
    python benchmarks/gpu_bench.py --device cpu --tiny --out bench.json        # a smoke run on the CPU

**Models** (`--shapes`): ``paper`` (12 × 768, 12 heads, B 32, L 128, T 4: the paper's shape),
``default`` (6 × 384, 12 heads, B 32, L 64: the cpu and gpu presets' student) and ``sst2`` (the
paper's shape on real SST-2 training batches as the trainer builds them, bucketed to their own
length; the official model gets the same texts padded to 128, as its script pads). ``--tiny``: one
1 × 64 shape at B 4, L 16, T 2 (and small inference batches), for the CPU.
**Official model** (``--official PATH``, a checkout of github.com/Lvchangze/SpikeBERT and SpikingJelly
installed): its ``model/new_spikformer.py`` imported from the checkout. Where its ``mlp.forward``
reshapes the hidden layer to the input width (and so fails at hidden ≠ width), that one method is
replaced at runtime by the same code reshaping to the hidden width; nothing of it is copied here.
**Variants of ours** (``--backends``): neurons eager or compiled (``SPIKEBERT_NEURON_BACKEND``),
``blocks``: every block under ``torch.compile`` (``SPIKEBERT_COMPILE=blocks``: LayerNorm, neurons and
residual adds fused around the matmuls), or ``graphs``: the same blocks compiled with
``mode="reduce-overhead"``, so that on CUDA each block's forward and backward replay as CUDA graphs
(one recorded per input shape: real batches are padded to a multiple of :data:`GRAPH_PAD`
tokens, and each step begins with ``torch.compiler.cudagraph_mark_step_begin``; on the CPU it
runs as ``blocks``); fp32 and bf16 autocast.
**Train step**: forward, cross-entropy plus a feature MSE on every block, backward, AdamW; median
over ``--steps`` after ``--warmup``, timed with CUDA events (``perf_counter`` on the CPU).
**Inference**: the forward pass alone at batch ``--infer-batch`` under ``inference_mode``.
**Peak memory**: ``torch.cuda.max_memory_allocated`` of each case (None on the CPU).
**Stage steps** (``--no-stages`` to skip): the trainer's own step (``trainer.train_step``: its loader,
micro-batches, finite check, optimiser) with run's stage-1 loss (the MiniLM teacher live on
corpus batches), with run's stage-2 loss from the cached teacher outputs and from the teacher live
(SST-2 plus augmented copies), each against the bare student step on the same batches already on
the device with the teacher's outputs precomputed: the ratio is the host's and the teacher's share.
**Profile** (``--profile DIR``): our student's training step at the first shape, precision and
neuron backend asked, under the PyTorch profiler (CPU and CUDA activity) for ``--steps`` steps after
``--warmup``: ``DIR/trace.json`` (open in chrome://tracing or Perfetto), ``DIR/ops.txt`` (the
operators by self time on the device, or on the CPU without one) and, in the JSON, the top
operators with their share of the profiled self time: where a step's time goes, to choose what
to fuse or compile next.
Writes the figures as JSON (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

SHAPES = {
    "paper": dict(depth=12, width=768, heads=12, batch=32, length=128, T=4),
    "default": dict(depth=6, width=384, heads=12, batch=32, length=64, T=4),
    "sst2": dict(depth=12, width=768, heads=12, batch=32, length=None, T=4),  # real batches
}
TINY = dict(depth=1, width=64, heads=4, batch=4, length=16, T=2)
TINY_SHAPES = {"tiny": TINY, "tiny-sst2": {**TINY, "length": None}}
OFFICIAL_PAD = 128  # the official script pads every batch to this length
GRAPH_PAD = 16  # the graphs variant pads real batches to a multiple of this: at most 8 shapes up to L 128
VOCAB = 30522


class Timer:
    """Per-step times in ms: CUDA events on the stream (a step's time includes the GPU waiting for
    the host), or ``perf_counter`` on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []

    def mark(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.marks.append(e)
        else:
            self.marks.append(time.perf_counter())

    def ms(self, warmup: int) -> list[float]:
        if self.cuda:
            torch.cuda.synchronize()
            d = [a.elapsed_time(b) for a, b in zip(self.marks, self.marks[1:])]
        else:
            d = [(b - a) * 1000 for a, b in zip(self.marks, self.marks[1:])]
        return d[warmup:]


def autocast(device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


# ---------------------------------------------------------------------------------------------- models

COMPILE_MODES = {"blocks": "default", "graphs": "reduce-overhead"}  # variants that compile every block


def set_backend(backend: str | None) -> str | None:
    """Our variant ``backend``: a neuron backend (``SPIKEBERT_NEURON_BACKEND``: ``compile``,
    ``eager``), ``blocks`` (every block under torch.compile, ``SPIKEBERT_COMPILE=blocks``) or
    ``graphs`` (the same in ``reduce-overhead`` mode: CUDA graphs); returns the blocks'
    ``torch.compile`` mode, or None where they stay eager."""
    if backend:
        os.environ["SPIKEBERT_NEURON_BACKEND"] = "compile" if backend in COMPILE_MODES else backend
    return COMPILE_MODES.get(backend)


def ours(shape: dict, device, blocks: str | None = None):
    from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
    from spikebert.training.device import compile_blocks

    cfg = SpikeBertConfig(vocab_size=VOCAB, num_labels=2, num_hidden_layers=shape["depth"], hidden_size=shape["width"],
                          num_attention_heads=shape["heads"], time_steps=shape["T"])
    model = SpikeBertForSequenceClassification(cfg).to(device)
    if blocks:
        compile_blocks(model, mode=blocks)

    def step(ids, mask, labels, targets):
        out = model(ids, mask, labels=labels)
        feats = model.distill_features(out.hidden_states)
        return out.loss + sum(F.mse_loss(f.float(), t) for f, t in zip(feats, targets))

    def infer(ids, mask):
        return model(ids, mask).logits

    return model, step, infer


def load_official(path: str):
    """The official ``model/new_spikformer.py`` as a module, its ``mlp.forward`` fixed at runtime
    when it reshapes the hidden layer to the input width."""
    file = Path(path) / "model" / "new_spikformer.py"
    if not file.is_file():
        raise SystemExit(f"error: {file}: not found (--official takes a checkout of the official repository)")
    sys.path.insert(0, str(Path(path)))
    spec = importlib.util.spec_from_file_location("official_new_spikformer", file)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except ImportError as e:
        raise SystemExit(f"error: the official model needs SpikingJelly ({e}): "
                         "pip install spikingjelly==0.0.0.0.14") from None
    probe = mod.mlp(length=4, tau=2.0, common_thr=1.0, in_features=8, hidden_features=32, out_features=8)
    try:
        probe(torch.zeros(1, 2, 4, 8))
        mod.fixed = False
    except RuntimeError:  # its hidden layer reshaped to the input width: the one-line fix
        def forward(self, x):
            x = x.transpose(0, 1)
            T, B, L, D = x.shape
            x = x.flatten(0, 1)
            x = self.lif1(self.ln1(self.fc1(x)).reshape(T, B, L, self.hidden_features).contiguous())
            x = x.flatten(0, 1)
            x = self.lif2(self.ln2(self.fc2(x)).reshape(T, B, L, self.out_features).contiguous())
            return x.transpose(0, 1)

        mod.mlp.forward = forward
        mod.fixed = True
    return mod


def official(mod, shape: dict, device):
    from spikingjelly.activation_based import functional

    model = mod.new_spikformer(depths=shape["depth"], length=OFFICIAL_PAD, tau=2.0, common_thr=1.0, dim=shape["width"],
                               T=shape["T"], vocab_size=VOCAB, num_classes=2, heads=shape["heads"]).to(device)

    def step(ids, mask, labels, targets):
        functional.reset_net(model)
        reps, logits = model(ids)
        loss = F.cross_entropy(logits.mean(1).float(), labels)
        return loss + sum(F.mse_loss(r.float(), t) for r, t in zip(reps, targets))

    def infer(ids, mask):
        functional.reset_net(model)
        return model(ids)[1]

    return model, step, infer


# ---------------------------------------------------------------------------------------------- timing

def batches_for(shape: dict, device, n: int, real: list | None, pad_to: int | None, multiple: int = 1):
    """``n`` batches (ids, mask, labels, feature targets) on the device: random tokens at the shape's
    length, or the real batches ``real`` (padded to ``pad_to`` when given, else to a multiple of
    ``multiple``)."""
    out = []
    for i in range(n):
        if real is None:
            ids = torch.randint(1000, VOCAB - 1, (shape["batch"], shape["length"]))
            mask = torch.ones_like(ids)
            labels = torch.randint(0, 2, (shape["batch"],))
        else:
            b = real[i % len(real)]
            ids, mask, labels = b["input_ids"], b["attention_mask"], b["labels"]
            to = pad_to or -(-ids.shape[1] // multiple) * multiple
            ids = F.pad(ids, (0, to - ids.shape[1]))
            mask = F.pad(mask, (0, to - mask.shape[1]))
        targets = [torch.randn(ids.shape[0], ids.shape[1], shape["width"]) for _ in range(shape["depth"])]
        out.append(tuple(x.to(device) for x in (ids, mask, labels)) + ([t.to(device) for t in targets],))
    return out


def train_once(step, opt, batch, device, precision, graphs: bool):
    """One training step on ``batch``; ``graphs``: it begins a new CUDA-graph step (the last
    step's outputs are done with)."""
    if graphs:
        torch.compiler.cudagraph_mark_step_begin()
    with autocast(device, precision):
        loss = step(*batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def time_train(model, step, batches, device, precision, warmup, steps, graphs: bool = False) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    reset_peak(device)
    timer = Timer(device)
    tokens = []
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        timer.mark()
        train_once(step, opt, batch, device, precision, graphs)
        if i >= warmup:
            tokens.append(batch[1].sum())  # the mask's real tokens
    timer.mark()
    return summary(timer.ms(warmup), torch.stack(tokens).float().mean().item(), device)


def time_infer(model, infer, ids, mask, device, precision, warmup, steps, graphs: bool = False) -> dict:
    model.eval()
    reset_peak(device)
    timer = Timer(device)
    with torch.inference_mode():
        for _ in range(warmup + steps):
            timer.mark()
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with autocast(device, precision):
                infer(ids, mask)
        timer.mark()
    model.train()
    return summary(timer.ms(warmup), float(mask.sum()), device)


def summary(ms: list[float], tokens: float, device) -> dict:
    med = statistics.median(ms)
    return {"ms": round(med, 3), "ms_min": round(min(ms), 3), "ms_max": round(max(ms), 3),
            "tokens_per_s": round(tokens / med * 1000, 1), "peak_gib": peak_gib(device) and round(peak_gib(device), 3)}


def real_batches(batch: int, n: int, tiny: bool) -> list:
    """The trainer's first ``n`` SST-2 training batches (bucketed, shuffled as in training)."""
    from spikebert.data.batching import encode_examples, make_loader
    from spikebert.data.tasks import task_splits
    from spikebert.folders import load_tokenizer
    from spikebert.teachers.loading import resolve_teacher

    splits = task_splits("sst2", None)
    examples = splits.train.examples[:batch * n] if tiny else splits.train.examples
    data = encode_examples(load_tokenizer(resolve_teacher(None)), examples, OFFICIAL_PAD)
    it = iter(make_loader(data, batch, shuffle=True, seed=42))
    return [next(it) for _ in range(n)]


def shapes_asked(a):
    """``(name, shape, real batches or None)`` of each shape asked; a real-batch shape's length is
    its longest batch's."""
    for name, shape in (TINY_SHAPES if a.tiny else {k: SHAPES[k] for k in a.shapes.split(",")}).items():
        real = real_batches(shape["batch"], 8, a.tiny) if shape["length"] is None else None
        if real is not None:
            shape = {**shape, "length": max(b["input_ids"].shape[1] for b in real)}
        yield name, shape, real


def model_cases(a, device, official_mod, rows: list, save) -> list[dict]:
    """Every shape × precision × model variant, appended to ``rows`` (``save()`` after each)."""
    for name, shape, real in shapes_asked(a):
        for precision in a.precisions.split(","):
            variants = [("ours", backend) for backend in a.backends.split(",")]
            if official_mod is not None:
                variants.append(("official", None))
            for who, backend in variants:
                blocks = set_backend(backend)
                graphs = blocks == COMPILE_MODES["graphs"]
                torch.manual_seed(0)
                model, step, infer = (ours(shape, device, blocks) if who == "ours"
                                      else official(official_mod, shape, device))
                pad = OFFICIAL_PAD if (who == "official" and real is not None) else None
                batches = batches_for(shape, device, 4, real, pad, GRAPH_PAD if graphs else 1)
                row = {"shape": name, "model": who, "neurons": backend, "precision": precision,
                       "depth": shape["depth"], "width": shape["width"], "batch": shape["batch"],
                       "length": "real" if real is not None and pad is None else (pad or shape["length"]), "T": shape["T"]}
                try:
                    row["train"] = time_train(model, step, batches, device, precision, a.warmup, a.steps, graphs)
                    ib = a.infer_batch or (8 if a.tiny else 256)
                    ids = torch.randint(1000, VOCAB - 1, (ib, 16 if a.tiny else 64), device=device)
                    row["infer"] = {"batch": ib, "length": ids.shape[1],
                                    **time_infer(model, infer, ids, torch.ones_like(ids), device, precision,
                                                 a.warmup, a.steps, graphs)}
                except Exception as e:  # noqa: BLE001 - one failed case must not lose the others
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                rows.append(row)
                print_row(row)
                save()
                del model
    os.environ.pop("SPIKEBERT_NEURON_BACKEND", None)
    return rows


def profile_case(a, device, out_dir: Path) -> dict:
    """Our training step under ``torch.profiler`` (see the module docstring); returns the top
    operators by self time (device time on CUDA, CPU time elsewhere), each with its share."""
    from torch.profiler import ProfilerActivity, profile

    name, shape, real = next(shapes_asked(a))
    precision, backend = a.precisions.split(",")[0], a.backends.split(",")[0]
    blocks = set_backend(backend)
    torch.manual_seed(0)
    model, step, _ = ours(shape, device, blocks)
    batches = batches_for(shape, device, 4, real, None)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])

    def train(steps):
        for i in range(steps):
            train_once(step, opt, batches[i % len(batches)], device, precision, blocks == COMPILE_MODES["graphs"])

    train(a.warmup)  # compilation and allocator warm-up stay out of the profile
    if device.type == "cuda":
        torch.cuda.synchronize()
    with profile(activities=activities) as prof:
        train(a.steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
    os.environ.pop("SPIKEBERT_NEURON_BACKEND", None)
    out_dir.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(out_dir / "trace.json"))
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    (out_dir / "ops.txt").write_text(events.table(sort_by=key, row_limit=40))
    total = sum(getattr(e, key) for e in events) or 1.0
    top = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:15]
    return {"shape": name, "precision": precision, "neurons": backend, "steps": a.steps, "sorted_by": key,
            "ms_per_step": round(total / 1000 / a.steps, 3), "trace": str(out_dir / "trace.json"),
            "top": [{"op": e.key, "calls": e.count, "ms_per_step": round(getattr(e, key) / 1000 / a.steps, 3),
                     "share": round(getattr(e, key) / total, 4)} for e in top]}


# ---------------------------------------------------------------------------------------------- stages

def stage_cases(a, device, rows: list, save) -> list[dict]:
    """The trainer's real stage-1 and stage-2 steps against the bare student step on the same batches."""
    from spikebert.data.batching import encode_examples, tokenize
    from spikebert.data.corpus import load_corpus
    from spikebert.data.tasks import task_splits
    from spikebert.distill.config import STAGE1, LayerMap, LossWeights
    from spikebert.distill.losses import Distiller, FeatureAligner, student_config, teacher_word_embeddings
    from spikebert.distill.stages import cached_columns, stage1_loss, stage2_loss, _joined
    from spikebert.distill.teacher_cache import cached_teacher, teacher_fingerprint
    from spikebert.modeling_spikebert import SpikeBertForSequenceClassification
    from spikebert.pipeline import PRESETS, default_corpus
    from spikebert.teachers.loading import load_teacher, resolve_teacher
    from spikebert.training.trainer import TrainArgs, epoch_batches, make_accelerator, set_up, train_step
    from spikebert.distill.config import StudentShape

    preset = PRESETS["tiny" if a.tiny else a.preset]
    batch = preset.batch_size or TrainArgs.batch_size
    n = a.warmup + a.steps
    shape = preset.shape if a.tiny else StudentShape(time_steps=4)
    path = resolve_teacher(None)
    acc = make_accelerator(0)
    work = Path(tempfile.mkdtemp(prefix="gpu-bench-"))

    def measure(name, trainable, data, loss_fn, extra=None) -> dict:
        args = TrainArgs(output=str(work / name), batch_size=batch, max_steps=n, epochs=None)
        run = set_up(trainable, data, args, acc, time.monotonic, extra)
        run.bar = _NoBar()
        batches = epoch_batches(run)
        kept = []
        reset_peak(device)
        timer = Timer(device)
        for _ in range(n):
            epoch, b = next(batches)
            timer.mark()
            train_step(run, b, loss_fn, epoch)
            kept.append(b)
        timer.mark()
        tokens = sum(float(b["attention_mask"].sum()) for b in kept) / n
        real = summary(timer.ms(a.warmup), tokens, device)
        # the bare step: the same batches and teacher outputs, already on the device
        on_device = []
        for b in kept:
            with torch.no_grad():
                on_device.append((b, loss_fn(_Capture(), b, 0, 0)))
        timer = Timer(device)
        for i in range(n):
            b, captured = on_device[i]
            timer.mark()
            with acc.autocast():
                loss, _ = run.model(*captured)
            acc.backward(loss)
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
        timer.mark()
        bare = summary(timer.ms(a.warmup), tokens, device)
        row = {"stage": name, "batch": batch, "step": real, "bare_step": bare,
               "step_over_bare": round(real["ms"] / bare["ms"], 3)}
        rows.append(row)
        save()
        print(f"{name:<22} step {real['ms']:>9.2f} ms   bare {bare['ms']:>9.2f} ms   ratio {row['step_over_bare']:.2f}",
              flush=True)
        return row

    # stage 1: corpus texts at the preset's stage-1 length, the teacher live
    teacher, tokenizer = load_teacher(path, head="encoder")
    teacher = teacher.to(acc.device).requires_grad_(False)
    corpus = load_corpus(default_corpus("en"), tokenizer, preset.stage1_max_length, batch * n * 2, 0)
    student = SpikeBertForSequenceClassification(student_config(teacher.config, shape))
    lmap = LayerMap.uniform(student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    measure("stage1 (teacher live)", FeatureAligner(student, lmap, STAGE1), corpus,
            stage1_loss(teacher, acc.device))
    # stage 2: SST-2 and augmented-like copies (the texts again, unlabelled), cached or live teacher
    # the MiniLM with an untrained two-class head: a fine-tuned teacher's cost, not its accuracy
    from transformers import AutoModelForSequenceClassification

    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    teacher = teacher.to(acc.device).requires_grad_(False)
    train = task_splits("sst2", None).train
    examples = train.examples[:batch * n] if a.tiny else train.examples
    base = encode_examples(tokenizer, examples, preset.max_length)
    copies = tokenize(tokenizer, [ex.text.lower() for ex in examples], preset.max_length)
    data = _joined(base, copies)
    lmap = LayerMap.uniform(student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    layers = tuple(t for _, t in lmap.pairs)
    cache = cached_teacher(teacher, teacher_fingerprint(path), [base.input_ids, copies], base.pad_token_id, layers,
                           work, preset.max_length, log=lambda *_: None)
    for name, cached in (("stage2 (cached teacher)", True), ("stage2 (teacher live)", False)):
        student = SpikeBertForSequenceClassification(student_config(
            teacher.config, shape, num_labels=2))
        distiller = Distiller(student, LossWeights(), lmap, teacher_word_embeddings(teacher))
        measure(name, distiller, data, stage2_loss(cache if cached else None, teacher, True, acc.device),
                cached_columns(cache) if cached else None)
    return rows


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


class _Capture:
    """Stands for the trainable in a ``loss_fn`` call: returns the arguments the loss would get."""

    def __call__(self, *args):
        return args


# ---------------------------------------------------------------------------------------------- output

def print_row(r: dict):
    head = f"{r['shape']:<8} {r['model']:<9} {str(r['neurons'] or '-'):<8} {r['precision']:<5} {str(r['length']):>5}"
    if "error" in r:
        print(f"{head}  failed: {r['error']}", flush=True)
        return
    t, i = r["train"], r["infer"]
    mem = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"{head} {t['ms']:>10.2f} {t['tokens_per_s']:>12.0f} {mem(t['peak_gib']):>8} {i['ms']:>10.2f} "
          f"{i['tokens_per_s']:>12.0f} {mem(i['peak_gib']):>8}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="one tiny shape (for the CPU and tests)")
    ap.add_argument("--official", default=None, help="a checkout of the official SpikeBERT repository")
    ap.add_argument("--shapes", default="paper,sst2,default", help="of: " + ", ".join(SHAPES))
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--backends", default="compile,eager", help="our variants: neuron backends (compile, eager: "
                    "SPIKEBERT_NEURON_BACKEND), blocks (each block under torch.compile: SPIKEBERT_COMPILE=blocks) and "
                    "graphs (blocks in reduce-overhead mode: CUDA graphs)")
    ap.add_argument("--preset", default="gpu", help="the run preset whose batch and lengths the stage steps use")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--infer-batch", type=int, default=None, help="default: 256 (8 with --tiny)")
    ap.add_argument("--no-stages", action="store_true", help="skip the stage-1/stage-2 step timings")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the figures to this JSON file")
    ap.add_argument("--profile", default=None, metavar="DIR",
                    help="also profile our training step (first shape, precision, backend): trace and op table in DIR")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but CUDA is not available here (use --device cpu --tiny)")
    if device.type != "cuda" and torch.cuda.is_available() and not a.no_stages:
        raise SystemExit("error: the stage steps run on the trainer's device (CUDA here): add --no-stages")
    if a.threads:
        torch.set_num_threads(a.threads)
    official_mod = load_official(a.official) if a.official else None
    print(f"{'shape':<8} {'model':<9} {'neurons':<8} {'prec':<5} {'L':>5} {'train ms':>10} {'train tok/s':>12} "
          f"{'GiB':>8} {'infer ms':>10} {'infer tok/s':>12} {'GiB':>8}")
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "tiny": a.tiny, "steps": a.steps, "warmup": a.warmup,
              "official": a.official, "official_fixed": getattr(official_mod, "fixed", None),
              "models": [], "stages": []}

    def save():  # after every case: a run cut short by a timeout keeps what it measured
        if a.out:
            Path(a.out).write_text(json.dumps(result, indent=2))

    model_cases(a, device, official_mod, result["models"], save)
    if a.profile:
        result["profile"] = profile_case(a, device, Path(a.profile))
        print(f"\nprofile ({result['profile']['sorted_by']}, {result['profile']['ms_per_step']} ms a step):")
        for op in result["profile"]["top"]:
            print(f"  {op['share'] * 100:5.1f} %  {op['ms_per_step']:9.3f} ms  {op['calls']:>6}  {op['op']}")
        save()
    if not a.no_stages:
        stage_cases(a, device, result["stages"], save)
    save()
    return result


if __name__ == "__main__":
    main()
