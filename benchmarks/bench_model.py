"""Speed and memory of the SpikeBERT student on this machine (not a test: it prints figures).

For each configuration: one training step (forward + backward + AdamW) at batch B, length L, T steps,
inference time per sentence, and peak resident memory of a fresh process running the step.
Neuron variants: the fused hand-written LIF (default), the same dynamics as a plain autograd
loop of the neuron base class, ReLU in place of the LIF (the matmul floor), any registered neuron
by name (``if``); SpikingJelly's LIFNode when installed
(`pip install --no-deps spikingjelly==2.0.0 loguru`). ``--input-encoding spike`` runs the
reference's spike input.

    python benchmarks/bench_model.py                      # default and paper scale
    python benchmarks/bench_model.py --only default --neurons fused,autograd,relu,if
    python benchmarks/bench_model.py --only default --input-encoding spike
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CONFIGS = {
    "default": dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12),
    "paper": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12),
}


def patch_neurons(model, kind: str):
    """Swap the multi-step dynamics of every neuron group the model declares (the groups still
    emit their spikes): ``autograd`` (the base class's charge/fire/reset loop), ``relu`` or
    ``spikingjelly``; ``fused`` and registry names (``lif``, ``if``) keep the model's own."""
    import torch
    from spikebert.neurons import Neuron

    for m in model.neuron_groups().values():
        if not isinstance(m, Neuron):  # the input encoder of spike input: no dynamics to swap
            continue
        if kind == "autograd":
            m.multi_step = m.forward_autograd
        elif kind == "relu":
            m.multi_step = torch.relu
        elif kind == "spikingjelly":
            from spikingjelly.activation_based import neuron, surrogate

            sj = neuron.LIFNode(tau=m.tau, v_threshold=m.threshold, detach_reset=True, step_mode="m",
                                surrogate_function=surrogate.ATan())

            def fwd(x, sj=sj):
                sj.reset()
                return sj(x)

            m.multi_step = fwd


def one(config: str, neuron: str, batch: int, length: int, time_steps: int, steps: int, threads: int | None,
        checkpoint_tokens: int | None = None, max_batch_tokens: int | None = None, input_encoding: str = "real"):
    import torch
    from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
    from spikebert.neurons import NEURONS
    from spikebert.training.trainer import micro_batches

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    extra = {} if checkpoint_tokens is None else {"checkpoint_tokens": checkpoint_tokens}
    if neuron in NEURONS:  # a registered neuron by name: the model is built with it
        extra["neuron"] = neuron
    cfg = SpikeBertConfig(vocab_size=30522, num_labels=2, time_steps=time_steps, input_encoding=input_encoding,
                          **CONFIGS[config], **extra)
    model = SpikeBertForSequenceClassification(cfg)
    patch_neurons(model, neuron)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(1000, 30000, (batch, length))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch,))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        # as the trainer steps: batches over max_batch_tokens token slots as accumulated micro-batches
        for part in micro_batches({"input_ids": ids, "mask": mask, "labels": labels}, max_batch_tokens):
            out = model(part["input_ids"], part["mask"], labels=part["labels"])
            feats = model.distill_features(out.hidden_states)
            loss = out.loss + sum(f.square().mean() for f in feats) * 0.0
            (loss * len(part["input_ids"]) / batch).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        model(ids, mask)
        infer = (time.perf_counter() - t0) / batch
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"config": config, "neuron": neuron, "encoding": input_encoding, "batch": batch, "length": length, "T": time_steps,
            "train_step_s": sum(times) / len(times), "infer_ms_per_sentence": infer * 1000, "peak_gib": peak}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="default,paper")
    ap.add_argument("--neurons", default="fused")
    ap.add_argument("--batch", type=int, default=None, help="default: 32 (default config), 8 (paper scale)")
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--time-steps", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--max-batch-tokens", type=int, default=1024,
                    help="the trainer's micro-batch budget (token slots); 0: the whole batch at once")
    ap.add_argument("--checkpoint-tokens", type=int, default=None,
                    help="override the config's activation-checkpointing threshold (0: always, -1: never)")
    ap.add_argument("--input-encoding", default="real", help="real or spike (SpikeBertConfig.input_encoding)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:  # one measurement per fresh process, so peak memory is this run's own
        config, neuron, batch = a.child.split(":")
        print(json.dumps(one(config, neuron, int(batch), a.length, a.time_steps, a.steps, a.threads,
                             a.checkpoint_tokens, a.max_batch_tokens, a.input_encoding)))
        return
    print(f"{'config':<8} {'neuron':<12} {'B':>3} {'L':>4} {'T':>2} {'step s':>8} {'infer ms/sent':>14} {'peak GiB':>9}")
    for config in a.only.split(","):
        batch = a.batch or (32 if config == "default" else 8)
        for neuron in a.neurons.split(","):
            cmd = [sys.executable, __file__, "--child", f"{config}:{neuron}:{batch}", "--length", str(a.length),
                   "--time-steps", str(a.time_steps), "--steps", str(a.steps), "--input-encoding", a.input_encoding]
            if a.threads:
                cmd += ["--threads", str(a.threads)]
            cmd += ["--max-batch-tokens", str(a.max_batch_tokens)]
            if a.checkpoint_tokens is not None:
                cmd += ["--checkpoint-tokens", str(a.checkpoint_tokens)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                print(f"{config:<8} {neuron:<12} failed: {res.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"{r['config']:<8} {r['neuron']:<12} {r['batch']:>3} {r['length']:>4} {r['T']:>2} "
                  f"{r['train_step_s']:>8.2f} {r['infer_ms_per_sentence']:>14.1f} {r['peak_gib']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
