"""What verifying the artefacts costs (not a test: it prints figures).

Builds, in a temporary folder, a synthetic stage-2 teacher-output cache part of ``--cache-gb``
(hidden states of 6 layers × 384, the MiniLM's, float32; logits, offsets, meta) and a real
checkpoint of a 12 × 768 SpikeBERT student (weights, and AdamW's two moments in the trainer state,
as the trainer saves them), then times, for each:

- the manifest written after the files (every byte read and digested once: what each checkpoint
  and each cache build pays);
- the verification when read back (what ``--resume`` and every stage-2 start pay), with the files
  in the page cache ("hot", just written) and evicted from it ("cold": ``posix_fadvise``
  DONTNEED on these files alone, so the disk is read).

It ends with the figures against the README's stage-2 time on SST-2 (20.5 min, 840 steps), the
cache scaled to SST-2's 2.8 GB with the MiniLM at the measured rate.

    python benchmarks/verify_cost.py                 # 1 GB cache: about a minute
    python benchmarks/verify_cost.py --cache-gb 2.8  # SST-2's size
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

STAGE2_SST2_MINUTES, STAGE2_SST2_STEPS = 20.5, 840  # README, "Results": stage 2 on SST-2, cpu preset
SST2_CACHE_GB = 2.8  # teacher_cache.py: SST-2 and its copies, the MiniLM's 6 layers, float32
SAVE_EVERY = 200  # TrainArgs' default


def evict(folder: Path) -> None:
    """Drop these files' pages from the page cache (after syncing them), so the next read is cold."""
    for f in folder.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def teacher_cache_part(folder: Path, gb: float) -> list[str]:
    """A part folder as ``teacher_cache.build_part`` writes it, of about ``gb`` GB."""
    import numpy as np

    layers, width = 6, 384
    tokens = int(gb * 1e9 / (4 * layers * width))
    texts = max(1, tokens // 23)  # SST-2 averages ~23 tokens a text
    folder.mkdir(parents=True)
    hidden = np.lib.format.open_memmap(folder / "hidden.npy", mode="w+", dtype=np.float32,
                                       shape=(tokens, layers, width))
    rng = np.random.default_rng(0)
    step = 1 << 16
    for i in range(0, tokens, step):
        hidden[i:i + step] = rng.standard_normal((min(step, tokens - i), layers, width), dtype=np.float32)
    hidden.flush()
    del hidden
    np.save(folder / "logits.npy", rng.standard_normal((texts, 2), dtype=np.float32))
    np.save(folder / "offsets.npy", np.linspace(0, tokens, texts + 1).astype(np.int64))
    (folder / "meta.json").write_text(json.dumps({"texts": texts, "tokens": tokens, "layers": [1, 2, 3, 4, 5, 6]}))
    return ["hidden.npy", "logits.npy", "offsets.npy", "meta.json"]


def checkpoint_12x768(root: Path, depth: int, width: int) -> tuple[Path, float]:
    """A checkpoint of a depth × width student with AdamW state, saved by ``save_checkpoint``
    (which writes its manifest); returns it and the seconds the save took."""
    import torch

    from spikebert import SpikeBertConfig, SpikeBertForSequenceClassification
    from spikebert.training.checkpoint import rng_state, save_checkpoint

    model = SpikeBertForSequenceClassification(SpikeBertConfig(
        vocab_size=30522, num_hidden_layers=depth, hidden_size=width, num_attention_heads=12,
        intermediate_size=4 * width, num_labels=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # creates both moments, as after a real step
    state = {"optimizer": optimizer.state_dict(), "scheduler": {}, "step": 200, "elapsed": 0.0, "best_score": None,
             "best_step": None, "history": "[]", "rng": rng_state()}
    t = time.perf_counter()
    path = save_checkpoint(root, 200, model, state)
    return path, time.perf_counter() - t


def measure(name: str, folder: Path, files: list[str], manifest_name: str = "manifest.json") -> dict:
    from spikebert.training.manifest import verify, write_manifest

    n = size(folder)
    write = timed(lambda: write_manifest(folder, files, manifest_name))
    hot = timed(lambda: verify(folder, manifest_name))
    evict(folder)
    problems = []
    cold = timed(lambda: problems.extend(verify(folder, manifest_name)))
    assert not problems, problems
    gb = n / 1e9
    print(f"{name}: {gb:.2f} GB; manifest written in {write:.2f} s ({gb / write:.2f} GB/s); verified in "
          f"{hot:.2f} s hot ({gb / hot:.2f} GB/s), {cold:.2f} s cold ({gb / cold:.2f} GB/s)")
    return {"gb": gb, "write_s": write, "hot_s": hot, "cold_s": cold}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-gb", type=float, default=1.0, help="size of the synthetic teacher-output cache part")
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--dir", default=None, help="where to build them (default: a temporary folder)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        part = tmp / "teacher-outputs" / "part"
        files = teacher_cache_part(part, args.cache_gb)
        cache = measure("teacher-output cache", part, files)
        ckpt, save_s = checkpoint_12x768(tmp / "run", args.depth, args.width)
        print(f"checkpoint {args.depth} x {args.width}: saved in {save_s:.2f} s, its manifest included")
        check = measure(f"checkpoint {args.depth} x {args.width}", ckpt, ["model.safetensors", "trainer_state.pt"])

    stage = STAGE2_SST2_MINUTES * 60
    step = stage / STAGE2_SST2_STEPS
    checkpoints = len({s for s in range(1, STAGE2_SST2_STEPS + 1)
                       if s % SAVE_EVERY == 0 or s % (STAGE2_SST2_STEPS // 2) == 0})
    rate_cold = cache["gb"] / cache["cold_s"]
    rate_write = cache["gb"] / cache["write_s"]
    sst2_verify, sst2_write = SST2_CACHE_GB / rate_cold, SST2_CACHE_GB / rate_write
    per_run = sst2_verify + checkpoints * check["write_s"]
    print(f"\nagainst stage 2 on SST-2 (README: {STAGE2_SST2_MINUTES} min, {STAGE2_SST2_STEPS} steps, "
          f"{step:.2f} s a step):")
    print(f"- verifying SST-2's {SST2_CACHE_GB} GB cache at each stage-2 start (cold): {sst2_verify:.1f} s = "
          f"{100 * sst2_verify / stage:.2f} % of the stage ({sst2_verify / step:.1f} steps); its manifest, once "
          f"per build: {sst2_write:.1f} s")
    print(f"- a {args.depth} x {args.width} checkpoint's manifest: {check['write_s']:.2f} s each "
          f"({check['write_s'] / step:.2f} steps); {checkpoints} checkpoints a stage ({SAVE_EVERY}-step saves and "
          f"2 epoch ends): {checkpoints * check['write_s']:.1f} s; verified at --resume: {check['cold_s']:.2f} s cold")
    print(f"- together: {per_run:.1f} s = {100 * per_run / stage:.2f} % of the stage's time")


if __name__ == "__main__":
    main()
