"""Stage 2's teacher outputs, computed once and kept on disk.

Stage 2 reads the fine-tuned teacher's logits (and, when the feature term is on, the hidden states
of the teacher layers the layer map names) for every batch of every epoch. The teacher is frozen
and in eval mode, so those outputs are a pure function of (teacher weights, token ids): this module
computes them once per text, at the text's real length, and every later epoch, seed and student
variant of the same teacher and data reads them back instead of running the teacher.

Layout: one folder per *part* of the training set (the task's own texts; their augmented copies),
``<cache>/teacher-outputs/<key>/``, holding

- ``logits.npy``: ``[texts, classes]`` float32;
- ``offsets.npy``: ``[texts + 1]`` int64, text i's tokens are rows ``offsets[i]:offsets[i+1]``;
- ``hidden.npy`` (only when hidden states are needed): ``[tokens, layers, width]``, memory-mapped,
  real tokens only (no padding is stored), one text's rows contiguous;
- ``meta.json``: what the key was made of, sizes, build time;
- ``manifest.json``: every file's size and digest (written last, :mod:`spikebert.training.manifest`).
  A part is verified before it is used; one that does not verify (or has no manifest: an older
  version's) is deleted and built again, with one line saying what was wrong.

The key hashes the teacher (its resolved folder, and the size and modification time of its
``config.json`` and weight files), the data (every token id), the maximum length, the teacher
layers stored and the storage dtype. A folder is written under a temporary name
(``.<key>.tmp-<host>-<pid>``) and renamed into place, so a folder in the cache is always complete;
what a killed build left (a temporary folder of this host whose process is gone, gigabytes for a
large teacher) is deleted before the next build measures the free space. A disk too full for the
cache is not an error: stage 2 then runs the teacher live (and says so).

Exactness: the cached outputs are the teacher's own at each text's real length; the live teacher
sees the text padded to its batch's longest. Padding is masked out of the attention, so the two
differ only by float rounding (the order of additions in a wider matrix product). Measured
(``benchmarks/teacher_cache.py``, SST-2 batches as the trainer makes them): the teacher's logits
and hidden states agree to about 5e-7 relative, and the stage-2 loss at the same student weights
to 1e-7 relative (float16 hidden states: 2e-6, so float32 is the default). Padding positions of the
hidden states are zeros here (the live teacher's are finite values); the feature MSE masks them out
either way. Over many steps a spiking student amplifies any rounding difference (a membrane
potential on the threshold fires or not), as it does for the same live run with another
micro-batch size: neither is more exact than the other.

Size: 4 bytes × tokens × layers × width for the hidden states (``float16``: half), plus 4 bytes ×
texts × classes. SST-2 (6,920 texts of 174,457 tokens and 6,499 augmented copies of 132,402
tokens: 306,859 tokens) with the 6 × 384 MiniLM, its 6 layers stored: 2.8 GB in float32; from the
12 × 768 MPNet onto a 6-block student, 6 of its layers stored: 5.7 GB (float16 2.8 GB). Without
the feature term (``rep`` weight 0) only the logits are stored: about 0.1 MB. The task's texts and
their augmented copies are separate parts, so a run with another augmentation seed rebuilds only
the copies'. Nothing is deleted automatically: remove ``teacher-outputs/`` to free the space.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikebert.training.checkpoint import atomic_write_text
from spikebert.training.manifest import no_space_error, usable_cache, verify, write_manifest

CACHE_VERSION = 1
CACHE_FOLDER = "teacher-outputs"
DTYPES = ("float32", "float16")
_BUILDER = socket.gethostname().replace("-", "_")  # in temporary folder names: whose build it is


def teacher_fingerprint(path) -> dict:
    """What identifies a teacher's weights: its resolved folder and the size and modification time
    (ns) of its config and weight files (a hub name: the name alone)."""
    p = Path(path)
    if not p.is_dir():
        return {"name": str(path)}
    files = sorted([p / "config.json", *p.glob("*.safetensors"), *p.glob("*.safetensors.index.json")])
    return {"folder": str(p.resolve()),
            "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]}


def ids_digest(input_ids: list[list[int]]) -> str:
    """SHA-256 of a list of token-id lists (order, lengths and every id)."""
    h = hashlib.sha256()
    lengths = np.fromiter((len(x) for x in input_ids), dtype=np.int64, count=len(input_ids))
    h.update(lengths.tobytes())
    for i in range(0, len(input_ids), 4096):
        chunk = [t for ids in input_ids[i:i + 4096] for t in ids]
        h.update(np.asarray(chunk, dtype=np.int64).tobytes())
    return h.hexdigest()


def part_key(teacher: dict, input_ids: list[list[int]], max_length: int, layers: tuple[int, ...], dtype: str) -> str:
    spec = {"version": CACHE_VERSION, "teacher": teacher, "ids": ids_digest(input_ids), "texts": len(input_ids),
            "max_length": max_length, "layers": list(layers), "dtype": dtype}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class Part:
    """One cached part: logits, token offsets and (optionally) the memory-mapped hidden states."""

    folder: Path
    logits: np.ndarray
    offsets: np.ndarray
    hidden: np.ndarray | None
    layers: tuple[int, ...]
    built: bool = False  # made by this process (False: found in the cache)
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())


def open_part(folder: Path) -> Part | None:
    """A complete part folder, or None."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    hidden = np.load(folder / "hidden.npy", mmap_mode="r") if meta["layers"] else None
    return Part(folder, np.load(folder / "logits.npy"), np.load(folder / "offsets.npy"), hidden,
                tuple(meta["layers"]), seconds=meta.get("seconds", 0.0))


def _batches(lengths: list[int], max_tokens: int, max_rows: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most ``max_tokens`` padded token slots."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out, cur = [], []
    for i in order:
        if cur and ((len(cur) + 1) * lengths[i] > max_tokens or len(cur) >= max_rows):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


def padded_batches(input_ids: list[list[int]], pad_token_id: int, device, max_tokens: int, max_rows: int,
                   desc: str, progress: bool = True):
    """``(rows, ids, mask)`` of length-sorted batches of ``input_ids``, padded, on ``device``."""
    from tqdm.auto import tqdm

    lengths = [len(x) for x in input_ids]
    for rows in tqdm(_batches(lengths, max_tokens, max_rows), desc=desc, leave=False, disable=not progress):
        longest = max(lengths[i] for i in rows)
        ids = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for r, i in enumerate(rows):
            ids[r, :lengths[i]] = torch.tensor(input_ids[i], dtype=torch.long)
            mask[r, :lengths[i]] = 1
        yield rows, ids.to(device), mask.to(device)


def temporary_folder(folder: Path) -> Path:
    """A fresh temporary folder beside ``folder`` named for this host and process (see
    :func:`remove_stale_builds`)."""
    tmp = folder.parent / f".{folder.name}.tmp-{_BUILDER}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


@contextmanager
def building(folder: Path):
    """A fresh temporary folder for the part ``folder`` (:func:`temporary_folder`), removed
    whatever happens (once published it is gone already); a full disk is one clear error."""
    tmp = temporary_folder(folder)
    try:
        yield tmp
    except OSError as e:
        raise no_space_error(e, folder.parent) or e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_folder(tmp: Path, folder: Path, meta: dict) -> None:
    """Write ``meta.json``, then the manifest of every file (:mod:`spikebert.training.manifest`),
    last into ``tmp`` and rename it into place as ``folder``."""
    atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1))
    write_manifest(tmp, [f.name for f in tmp.iterdir() if f.is_file()])
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same part first: theirs is as good
        if not (folder / "meta.json").is_file():
            raise


@torch.no_grad()
def build_part(teacher, input_ids: list[list[int]], pad_token_id: int, layers: tuple[int, ...], folder: Path,
               meta: dict, dtype: str = "float32", max_tokens: int = 4096, max_rows: int = 64,
               device=None, progress: bool = True) -> Part:
    """Run ``teacher`` once over ``input_ids`` (length-sorted batches, no grad) and write the part
    folder atomically (see the module docstring)."""
    t0 = time.monotonic()
    device = device or next(teacher.parameters()).device
    lengths = [len(x) for x in input_ids]
    offsets = np.zeros(len(input_ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    with building(folder) as tmp:
        hidden = None
        if layers:
            width = teacher.config.hidden_size
            hidden = np.lib.format.open_memmap(tmp / "hidden.npy", mode="w+", dtype=np.dtype(dtype),
                                               shape=(int(offsets[-1]), len(layers), width))
        logits = None
        for rows, ids, mask in padded_batches(input_ids, pad_token_id, device, max_tokens, max_rows,
                                              "teacher outputs", progress):
            out = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=bool(layers))
            if logits is None:
                logits = np.zeros((len(input_ids), out.logits.shape[-1]), dtype=np.float32)
            logits[rows] = out.logits.float().cpu().numpy()
            if layers:
                stacked = torch.stack([out.hidden_states[t] for t in layers], dim=2).float().cpu().numpy()
                for r, i in enumerate(rows):
                    hidden[offsets[i]:offsets[i + 1]] = stacked[r, :lengths[i]]
        if hidden is not None:
            hidden.flush()
            del hidden
        np.save(tmp / "logits.npy", logits)
        np.save(tmp / "offsets.npy", offsets)
        seconds = time.monotonic() - t0
        publish_folder(tmp, folder, {**meta, "layers": list(layers), "dtype": dtype, "texts": len(input_ids),
                                     "tokens": int(offsets[-1]), "seconds": round(seconds, 2)})
    part = open_part(folder)
    part.built, part.seconds = True, seconds
    return part


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def remove_stale_builds(base: Path) -> list[Path]:
    """Delete the temporary folders under ``base`` of builds by this host's processes that are
    gone (killed mid-build); another host's, or a running process's, stay. Returns those deleted."""
    gone = []
    for tmp in base.glob(f".*.tmp-{_BUILDER}-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            gone.append(tmp)
    return gone


def has_room(base: Path, need: int, what: str, log=print) -> bool:
    """Whether ``base`` has room for ``need`` bytes and 256 MB to spare; says so when it has not
    (the caller then runs the teacher live)."""
    free = shutil.disk_usage(base).free
    if free < need + (256 << 20):
        log(f"{what} not cached: {need / 1e6:.0f} MB needed in {base}, {free / 1e6:.0f} MB free; "
            "the teacher runs live on every batch")
        return False
    return True


def needed_bytes(input_ids: list[list[int]], layers: tuple[int, ...], width: int, classes: int, dtype: str) -> int:
    tokens = sum(len(x) for x in input_ids)
    return tokens * len(layers) * width * np.dtype(dtype).itemsize + len(input_ids) * (classes * 4 + 8) + 4096


class CachedTeacher:
    """The teacher's outputs of a whole training set (its parts, concatenated in order), looked
    up by the dataset indices a batch carries (``batch["index"]``)."""

    def __init__(self, parts: list[Part]):
        self.parts = parts
        self.layers = parts[0].layers if parts else ()
        self.logits = torch.from_numpy(np.concatenate([p.logits for p in parts])) if parts else None
        # per global index: its part, and its first and last token rows in that part's hidden states
        self.part_of = np.concatenate([np.full(len(p.logits), k, dtype=np.int64) for k, p in enumerate(parts)])
        self.start = np.concatenate([p.offsets[:-1] for p in parts])
        self.end = np.concatenate([p.offsets[1:] for p in parts])

    def __len__(self) -> int:
        return len(self.part_of)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.parts)

    def __call__(self, index: torch.Tensor, length: int, device=None, dtype=torch.float32):
        """``(logits [B, C], hidden)`` of the texts ``index`` padded to ``length`` tokens;
        ``hidden`` maps each stored teacher layer to ``[B, length, width]`` (zeros at padding),
        or is None when no layer is stored."""
        idx = index.detach().cpu().numpy()
        logits = self.logits[torch.from_numpy(idx)]
        hidden = None
        if self.layers:
            width = self.parts[0].hidden.shape[-1]
            buf = np.zeros((len(idx), length, len(self.layers), width), dtype=np.float32)
            for r, i in enumerate(idx):
                s, e = self.start[i], self.end[i]
                buf[r, :e - s] = self.parts[self.part_of[i]].hidden[s:e]
            t = torch.from_numpy(buf).permute(2, 0, 1, 3).contiguous().to(device=device, dtype=dtype)
            hidden = {layer: t[k] for k, layer in enumerate(self.layers)}
        return logits.to(device), hidden

    def record(self) -> dict:
        """What ``metrics.json`` keeps of the cache."""
        return {"used": True, "folders": [str(p.folder) for p in self.parts], "built": [p.built for p in self.parts],
                "build_seconds": [round(p.seconds, 1) for p in self.parts], "bytes": self.bytes,
                "layers": list(self.layers)}


def cached_teacher(teacher, teacher_id: dict, parts: list[list[list[int]]], pad_token_id: int,
                   layers: tuple[int, ...], root: Path, max_length: int, dtype: str = "float32",
                   build: bool = True, log=print) -> CachedTeacher | None:
    """The teacher's outputs over ``parts`` (lists of token-id lists), from ``root/teacher-outputs``
    or computed now (``build``; only one process should build). None when a part is missing and is
    not to be built, or the disk has no room for it (the caller runs the teacher live)."""
    if dtype not in DTYPES:
        raise ValueError(f"teacher cache dtype must be one of {DTYPES}, not {dtype!r}")
    layers = tuple(sorted(set(layers)))
    base = Path(root) / CACHE_FOLDER
    for tmp in remove_stale_builds(base) if build else ():
        log(f"teacher outputs: deleted {tmp.name}, left by a build that was killed")
    done = []
    for ids in parts:
        if not ids:
            continue
        key = part_key(teacher_id, ids, max_length, layers, dtype)
        folder = base / key
        ok = usable_cache(folder, lambda: verify(folder), "teacher outputs", log, remove=build)
        part = open_part(folder) if ok else None
        if part is None:
            if not build:
                return None
            base.mkdir(parents=True, exist_ok=True)
            need = needed_bytes(ids, layers, teacher.config.hidden_size, teacher.config.num_labels, dtype)
            if not has_room(base, need, "teacher outputs", log):
                return None
            log(f"teacher outputs of {len(ids)} texts -> {folder} ({need / 1e6:.0f} MB)")
            part = build_part(teacher, ids, pad_token_id, layers, folder,
                              {"teacher": teacher_id, "max_length": max_length, "version": CACHE_VERSION}, dtype)
        else:
            log(f"teacher outputs of {len(ids)} texts: reusing {folder}")
        done.append(part)
    return CachedTeacher(done)
