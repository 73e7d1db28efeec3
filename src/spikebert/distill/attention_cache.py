"""Stage 2's teacher attention maps, computed once and kept on disk beside the teacher's other
outputs (:mod:`spikebert.distill.teacher_cache`), for the attention term (``--w-attn``).

A part of its own per part of the training set, ``<cache>/teacher-outputs/attn-<key>/``, so that
the logits and hidden-state parts (and every cache made before attention distillation existed)
keep their keys and stay valid; it is built only when the attention weight is set, and holds only
the teacher layers the layer map names:

- ``attentions.npy``: ``[Σ texts n², layers, heads]`` (n: a text's real length), memory-mapped;
  text i's n × n maps (query-major) are rows ``offsets[i]:offsets[i+1]``; padding is not stored;
- ``offsets.npy``: ``[texts + 1]`` int64, the running sum of n²;
- ``meta.json``: what the key was made of, sizes, build time (written last).

Size: itemsize × Σ n² × layers × heads. SST-2 with the MiniLM's tokenizer (max length 128): its
6,920 training texts have Σ n² = 5.30 M (mean length 25.2) and their 6,499 augmented copies (seed
42) 3.80 M, so 6 layers × 12 heads take 2.62 GB in float32 (1.53 + 1.09) and 1.31 GB in float16;
the MPNet's 6 mapped layers of 12 heads, onto a 6-block student, the same. Computed from the
token counts (``python`` over ``tokenize`` and ``augment``), not measured on disk.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from spikebert.distill.teacher_cache import (CACHE_FOLDER, CACHE_VERSION, DTYPES, building, has_room, ids_digest,
                                             padded_batches, publish_folder, remove_stale_builds)
from spikebert.training.manifest import usable_cache, verify


def attention_key(teacher: dict, input_ids: list[list[int]], max_length: int, layers: tuple[int, ...],
                  dtype: str) -> str:
    spec = {"version": CACHE_VERSION, "kind": "attentions", "teacher": teacher, "ids": ids_digest(input_ids),
            "texts": len(input_ids), "max_length": max_length, "layers": list(layers), "dtype": dtype}
    return "attn-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def squares(input_ids: list[list[int]]) -> np.ndarray:
    """``[texts + 1]``: the running sum of each text's length squared (row offsets of its maps)."""
    offsets = np.zeros(len(input_ids) + 1, dtype=np.int64)
    np.cumsum([len(x) ** 2 for x in input_ids], out=offsets[1:])
    return offsets


def needed_bytes(input_ids: list[list[int]], layers: tuple[int, ...], heads: int, dtype: str) -> int:
    return int(squares(input_ids)[-1]) * len(layers) * heads * np.dtype(dtype).itemsize + 8 * len(input_ids) + 4096


class AttentionPart:
    """One cached part: offsets and the memory-mapped maps."""

    def __init__(self, folder: Path, built: bool = False, seconds: float | None = None):
        meta = json.loads((folder / "meta.json").read_text())
        self.folder, self.built = folder, built
        self.layers = tuple(meta["layers"])
        self.seconds = meta.get("seconds", 0.0) if seconds is None else seconds
        self.offsets = np.load(folder / "offsets.npy")
        self.maps = np.load(folder / "attentions.npy", mmap_mode="r")

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())


@torch.no_grad()
def build_attention_part(teacher, input_ids: list[list[int]], pad_token_id: int, layers: tuple[int, ...],
                         folder: Path, meta: dict, dtype: str, max_tokens: int = 4096, max_rows: int = 64,
                         device=None) -> AttentionPart:
    """Run ``teacher`` (set to return attentions) once over ``input_ids`` and write the part
    folder atomically."""
    t0 = time.monotonic()
    device = device or next(teacher.parameters()).device
    lengths = [len(x) for x in input_ids]
    offsets = squares(input_ids)
    with building(folder) as tmp:
        heads = teacher.config.num_attention_heads
        maps = np.lib.format.open_memmap(tmp / "attentions.npy", mode="w+", dtype=np.dtype(dtype),
                                         shape=(int(offsets[-1]), len(layers), heads))
        for rows, ids, mask in padded_batches(input_ids, pad_token_id, device, max_tokens, max_rows,
                                              "teacher attentions"):
            out = teacher(input_ids=ids, attention_mask=mask, output_attentions=True)
            # [B, H, L, L] per layer -> [B, L, L, layers, H]
            stacked = torch.stack([out.attentions[t - 1] for t in layers], dim=-1).permute(0, 2, 3, 4, 1)
            stacked = stacked.float().cpu().numpy()
            for r, i in enumerate(rows):
                n = lengths[i]
                maps[offsets[i]:offsets[i + 1]] = stacked[r, :n, :n].reshape(n * n, len(layers), heads)
        maps.flush()
        del maps
        np.save(tmp / "offsets.npy", offsets)
        seconds = time.monotonic() - t0
        publish_folder(tmp, folder, {**meta, "layers": list(layers), "dtype": dtype, "texts": len(input_ids),
                                     "squares": int(offsets[-1]), "seconds": round(seconds, 2)})
    return AttentionPart(folder, built=True, seconds=seconds)


class CachedAttentions:
    """The teacher's attention maps of a whole training set (its parts in order), looked up by
    the dataset indices a batch carries."""

    def __init__(self, parts: list[AttentionPart]):
        self.parts = parts
        self.layers = parts[0].layers
        self.part_of = np.concatenate([np.full(len(p.offsets) - 1, k, dtype=np.int64) for k, p in enumerate(parts)])
        self.start = np.concatenate([p.offsets[:-1] for p in parts])
        self.end = np.concatenate([p.offsets[1:] for p in parts])

    def __call__(self, index: torch.Tensor, length: int, device=None) -> dict[int, torch.Tensor]:
        """``{teacher layer: [B, H, length, length]}`` (zeros where a query or key is padding)."""
        idx = index.detach().cpu().numpy()
        heads = self.parts[0].maps.shape[-1]
        buf = np.zeros((len(idx), length, length, len(self.layers), heads), dtype=np.float32)
        for r, i in enumerate(idx):
            s, e = self.start[i], self.end[i]
            n = int(round((e - s) ** 0.5))
            buf[r, :n, :n] = self.parts[self.part_of[i]].maps[s:e].reshape(n, n, len(self.layers), heads)
        t = torch.from_numpy(buf).permute(3, 0, 4, 1, 2).to(device)  # [layers, B, H, L, L]
        return {layer: t[k] for k, layer in enumerate(self.layers)}

    def record(self) -> dict:
        """What ``metrics.json`` keeps of it."""
        return {"folders": [str(p.folder) for p in self.parts], "built": [p.built for p in self.parts],
                "build_seconds": [round(p.seconds, 1) for p in self.parts],
                "bytes": sum(p.bytes for p in self.parts), "layers": list(self.layers)}


def cached_attentions(teacher, teacher_id: dict, parts: list[list[list[int]]], pad_token_id: int,
                      layers: tuple[int, ...], root: Path, max_length: int, dtype: str = "float32",
                      build: bool = True, log=print) -> CachedAttentions | None:
    """The teacher's attention maps of ``layers`` over ``parts``, from ``root/teacher-outputs`` or
    computed now (``build``; only one process should build). None when a part is missing and is
    not to be built, or the disk has no room for it (the caller runs the teacher live)."""
    if dtype not in DTYPES:
        raise ValueError(f"attention cache dtype must be one of {DTYPES}, not {dtype!r}")
    layers = tuple(sorted(set(layers)))
    base = Path(root) / CACHE_FOLDER
    if build:
        remove_stale_builds(base)
    done = []
    for ids in parts:
        if not ids:
            continue
        folder = base / attention_key(teacher_id, ids, max_length, layers, dtype)
        if usable_cache(folder, lambda: verify(folder), "teacher attentions", log, remove=build):
            log(f"teacher attentions of {len(ids)} texts: reusing {folder}")
            done.append(AttentionPart(folder))
            continue
        if not build:
            return None
        base.mkdir(parents=True, exist_ok=True)
        need = needed_bytes(ids, layers, teacher.config.num_attention_heads, dtype)
        if not has_room(base, need, "teacher attentions", log):
            return None
        log(f"teacher attentions of {len(ids)} texts -> {folder} ({need / 1e6:.0f} MB)")
        done.append(build_attention_part(teacher, ids, pad_token_id, layers, folder,
                                         {"teacher": teacher_id, "max_length": max_length, "version": CACHE_VERSION},
                                         dtype))
    return CachedAttentions(done) if done else None
