"""What training does differently on a CUDA device, in one place. On the CPU every function here
is the identity of what the code did before (fp32, eager, no loader workers): the CPU's results
stay bit for bit.

On CUDA the host is kept off the critical path:

- the training loader collates in worker processes, prefetches and pins its batches
  (:func:`loader_options`), and batches go to the device with ``non_blocking=True``
  (``accelerate``'s ``non_blocking``, :func:`spikebert.training.trainer.make_accelerator`);
- the trainer reads nothing back from the device per step (the finite-loss check is kept on the
  device and read at log, evaluation and checkpoint time);
- a frozen teacher runs in bf16 under ``torch.inference_mode`` (:func:`teacher_forward`);
- micro-batching (``TrainArgs.max_batch_tokens``, sized for 2 CPU cores' caches) takes batches of at
  least :data:`CUDA_MAX_BATCH_TOKENS` token slots whole (:func:`batch_token_budget`).

``SPIKEBERT_COMPILE=blocks`` (any device; default ``none``) puts each spiking block of the
student under ``torch.compile`` (:func:`compile_blocks`): LayerNorm, neurons and the residual
adds fused around the matmuls. It is opt-in until a GPU measurement says it pays
(``benchmarks/gpu_bench.py --backends blocks``); on 2 CPU cores the matmuls are most of a step.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import os

import torch

COMPILE_ENV = "SPIKEBERT_COMPILE"
COMPILE_CHOICES = ("none", "blocks")
LOADER_WORKERS = 4  # collating processes of the training loader on CUDA
LOADER_PREFETCH = 4  # batches each of them keeps ready
# a batch of up to this many token slots (rows × padded length) is one micro-batch on CUDA: 128 × 128,
# the largest batch of the presets at their longest length; the 12 × 768 student at B 32, L 128
# peaked at 16.4 GiB on an H200 (../shared/gpu/README.md), so this stays within a 40 GiB GPU for it
CUDA_MAX_BATCH_TOKENS = 16384


def is_cuda(device) -> bool:
    return torch.device(device).type == "cuda"


def environment(accelerator=None) -> dict:
    """What a run's floating-point results depend on besides its seed and data, recorded in every
    job's ``metrics.json``: the same code, seed and data give bit-identical weights on one machine
    with one thread count, but another thread count (and most likely another CPU kernel level,
    AVX2 or AVX512) sums in another order, and whole runs end apart (docs/reliability.md,
    "Reproducibility")."""
    import platform

    import transformers

    device = accelerator.device if accelerator is not None else torch.device("cpu")
    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "device": str(device),
           "processes": accelerator.num_processes if accelerator is not None else 1,
           "threads": torch.get_num_threads(), "cpu": _cpu_name(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if is_cuda(device):
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else what ``platform`` says."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loader_options(device) -> dict:
    """Extra ``DataLoader`` arguments for training on ``device`` (none on the CPU)."""
    if not is_cuda(device):
        return {}
    # fork: the workers inherit the collator (a closure over the teacher cache) without pickling it,
    # and never touch CUDA themselves
    return dict(num_workers=LOADER_WORKERS, prefetch_factor=LOADER_PREFETCH, pin_memory=True,
                multiprocessing_context="fork")


def batch_token_budget(max_batch_tokens: int | None, device) -> int | None:
    """The micro-batch budget on ``device``: the one given on the CPU, at least
    :data:`CUDA_MAX_BATCH_TOKENS` on CUDA (None: no micro-batching)."""
    if not max_batch_tokens or not is_cuda(device):
        return max_batch_tokens
    return max(max_batch_tokens, CUDA_MAX_BATCH_TOKENS)


def bf16_ok(device) -> bool:
    return is_cuda(device) and torch.cuda.is_bf16_supported()


@contextmanager
def teacher_forward(device):
    """The context a frozen teacher's forward runs in: ``torch.no_grad`` on the CPU (fp32, as
    always); ``torch.inference_mode`` under bf16 autocast on CUDA. Its outputs are then inference
    tensors: read them (losses do), never modify them in place or save them for backward."""
    with ExitStack() as stack:
        if is_cuda(device):
            stack.enter_context(torch.inference_mode())
            if bf16_ok(device):
                stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        else:
            stack.enter_context(torch.no_grad())
        yield


def compile_choice() -> str:
    """``SPIKEBERT_COMPILE``: ``none`` (default) or ``blocks``."""
    choice = os.environ.get(COMPILE_ENV, "none")
    if choice not in COMPILE_CHOICES:
        from spikebert.errors import SpikeBertError

        raise SpikeBertError(f"{COMPILE_ENV} must be one of {', '.join(COMPILE_CHOICES)}, not {choice!r}")
    return choice


def compile_blocks(model: torch.nn.Module, mode: str | None = None) -> int:
    """Each spiking block in ``model`` compiled in place (``nn.Module.compile``: the parameters,
    their names and ``state_dict`` stay as they are); returns how many. The neurons' own kernels
    are then traced into the block's graph (:func:`spikebert.neurons.lif.backend_kernels`).
    ``mode``: ``torch.compile``'s (``"reduce-overhead"``: each block's graph replayed as a CUDA
    graph, one recorded per input shape; ``benchmarks/gpu_bench.py --backends graphs``)."""
    from spikebert.modeling_spikebert import SpikeBertBlock

    blocks = [m for m in model.modules() if isinstance(m, SpikeBertBlock)]
    for block in blocks:
        block.compile(mode=mode)
    return len(blocks)
