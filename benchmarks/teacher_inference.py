"""Does a faster teacher inference pay? (not a test: it prints figures)

The teacher runs in two places: live in stage 1 (every corpus batch) and once per task to build
stage 2's cache. This compares, on a task's dev set batched as the trainer batches (length
buckets), the fine-tuned teacher four ways, interleaved batch by batch so that other load on the
machine hits all alike:

- ``fp32``: eager PyTorch, what the project runs;
- ``int8``: ``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear`` (int8 weights,
  activations quantised on the fly);
- ``onnx``: ONNX Runtime on the legacy-exported graph (float32);
- ``onnx-int8``: ONNX Runtime's dynamic int8 quantisation of that graph.

For each: time a batch, dev accuracy and agreement with ``fp32``, the largest logit difference,
the relative error of the hidden states stage 2 matches, and the stage-2 loss (labels, logits,
hidden states, embeddings) of one fixed student computed from that variant's outputs against
``fp32``'s: how far the teacher signal the student learns from moves.

    python benchmarks/teacher_inference.py --teacher runs/sst2/teacher-all-mpnet-base-v2 --threads 2
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

VARIANTS = ("fp32", "int8", "onnx", "onnx-int8")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--teacher", required=True, help="a fine-tuned teacher folder")
    ap.add_argument("--limit", type=int, default=None, help="dev examples (default: all)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()

    import torch

    from spikebert.data.batching import encode_examples, make_loader
    from spikebert.data.tasks import label_fields, load_data
    from spikebert.distill.config import LayerMap, LossWeights, StudentShape
    from spikebert.distill.losses import Distiller, student_config, teacher_word_embeddings
    from spikebert.modeling_spikebert import SpikeBertForSequenceClassification
    from spikebert.teachers.loading import load_teacher

    torch.set_num_threads(a.threads)
    dev = load_data(a.task, "dev", a.data_dir, limit=a.limit)
    teacher, tokenizer = load_teacher(a.teacher, head="classifier", labels=dev.labels)
    teacher.requires_grad_(False)
    n_layers = teacher.config.num_hidden_layers
    data = encode_examples(tokenizer, dev.examples, a.max_length)
    batches = list(make_loader(data, a.batch_size, shuffle=False))

    # one fixed student (the default 6 x 384, T = 4) to score each variant's teacher signal with
    torch.manual_seed(0)
    student = SpikeBertForSequenceClassification(student_config(
        teacher.config, StudentShape(depth=6, width=384, heads=6, time_steps=4), **label_fields(dev.labels)))
    lmap = LayerMap.parse(None, 6, n_layers)
    distiller = Distiller(student, LossWeights(), lmap, teacher_word_embeddings(teacher)).eval()

    work = Path(tempfile.mkdtemp(prefix="teacher-inference-"))
    run = {"fp32": eager(teacher)}
    wanted = a.variants.split(",")
    t0 = time.perf_counter()
    if "int8" in wanted:
        run["int8"] = eager(torch.ao.quantization.quantize_dynamic(copy.deepcopy(teacher), {torch.nn.Linear},
                                                                   dtype=torch.qint8))
    prep = {"int8": time.perf_counter() - t0}
    if "onnx" in wanted or "onnx-int8" in wanted:
        t0 = time.perf_counter()
        path = export_onnx(teacher, batches[0], n_layers, work / "teacher.onnx")
        prep["onnx"] = time.perf_counter() - t0
        if "onnx" in wanted:
            run["onnx"] = onnx_runner(path, a.threads, n_layers)
        if "onnx-int8" in wanted:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            t0 = time.perf_counter()
            q = work / "teacher-int8.onnx"
            quantize_dynamic(str(path), str(q), weight_type=QuantType.QInt8)
            prep["onnx-int8"] = prep["onnx"] + time.perf_counter() - t0
            run["onnx-int8"] = onnx_runner(q, a.threads, n_layers)

    names = list(run)
    secs = dict.fromkeys(names, 0.0)
    correct = dict.fromkeys(names, 0)
    agree = dict.fromkeys(names, 0)
    d_logit = dict.fromkeys(names, 0.0)
    d_hidden = dict.fromkeys(names, 0.0)
    d_loss = dict.fromkeys(names, 0.0)
    total = 0
    layers = [t for _, t in lmap.pairs]
    for batch in batches:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        out = {}
        for name in names:
            t = time.perf_counter()
            out[name] = run[name](ids, mask)
            secs[name] += time.perf_counter() - t
        ref_logits, ref_hidden = out["fp32"]
        ref_pred = ref_logits.argmax(-1)
        m = mask.unsqueeze(-1).float()
        with torch.no_grad():
            ref_loss, _ = distiller(ids, mask, labels, ref_logits, ref_hidden)
            for name in names:
                logits, hidden = out[name]
                pred = logits.argmax(-1)
                correct[name] += int((pred == labels).sum())
                agree[name] += int((pred == ref_pred).sum())
                if name == "fp32":  # the reference: its differences are zero by definition
                    continue
                d_logit[name] = max(d_logit[name], float((logits - ref_logits).abs().max()))
                for t in layers:
                    err = ((hidden[t] - ref_hidden[t]) * m).norm() / (ref_hidden[t] * m).norm()
                    d_hidden[name] = max(d_hidden[name], float(err))
                loss, _ = distiller(ids, mask, labels, logits, hidden)
                d_loss[name] = max(d_loss[name], abs(float(loss) - float(ref_loss)) / abs(float(ref_loss)))
        total += len(labels)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    print(f"{a.task} dev: {total} sentences, {len(batches)} batches of {a.batch_size} ({tokens / len(batches):.0f} "
          f"real tokens a batch); teacher {a.teacher} ({n_layers} x {teacher.config.hidden_size}); "
          f"{torch.get_num_threads()} thread(s); hidden states compared at layers {layers}")
    print(f"  {'variant':10s} {'ms/batch':>9s} {'speed-up':>8s} {'dev acc':>8s} {'agree':>7s} "
          f"{'max |dlogit|':>12s} {'hidden rel':>10s} {'loss rel':>9s} {'prepare s':>9s}")
    for name in names:
        print(f"  {name:10s} {secs[name] / len(batches) * 1000:9.1f} {secs['fp32'] / secs[name]:7.2f}x "
              f"{100 * correct[name] / total:7.2f}% {100 * agree[name] / total:6.2f}% {d_logit[name]:12.2e} "
              f"{d_hidden[name]:10.2e} {d_loss[name]:9.2e} {prep.get(name, 0.0):9.1f}")


def eager(model):
    """A variant's forward: logits and the tuple of every hidden state (embeddings first)."""
    import torch

    def forward(ids, mask):
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return out.logits, out.hidden_states

    return forward


def export_onnx(model, batch, n_layers: int, path: Path) -> Path:
    """The classifier with logits and every hidden state as outputs, batch and length dynamic."""
    import torch

    class Outputs(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            out = self.m(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return (out.logits, *out.hidden_states)

    names = ["logits"] + [f"hidden_{i}" for i in range(n_layers + 1)]
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
            "logits": {0: "batch"}, **{n: {0: "batch", 1: "length"} for n in names[1:]}}
    # the wrapper in eval mode: the exporter restores the wrapper's mode afterwards, recursively, and a
    # fresh module's is training (dropout would then be on in the eager teacher)
    torch.onnx.export(Outputs(model).eval(), (batch["input_ids"], batch["attention_mask"]), str(path),
                      input_names=["input_ids", "attention_mask"], output_names=names, dynamic_axes=axes,
                      opset_version=17, dynamo=False)
    return path


def onnx_runner(path: Path, threads: int, n_layers: int):
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def forward(ids, mask):
        outs = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        return torch.from_numpy(outs[0]), tuple(torch.from_numpy(h) for h in outs[1:])

    return forward


if __name__ == "__main__":
    main()
