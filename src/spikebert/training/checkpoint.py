"""Writing model folders and training checkpoints so that a kill at any moment loses nothing.

- A file is written to a temporary name in the same folder, flushed to disk, then renamed over
  its final name (``os.replace`` is atomic on POSIX).
- A checkpoint is a folder ``checkpoints/step-NNNNNNN`` built under a temporary name and renamed
  into place; the file ``checkpoints/latest`` (itself replaced atomically) names the newest
  complete one. Older ones are removed only after ``latest`` points past them.
- A model folder is published with its weights first and ``config.json`` after them, so a folder
  that has a config has all its weights; ``metrics.json`` is written last of all.
- Training state holds only tensors, numbers and strings and is read with
  ``torch.load(weights_only=True)``, which cannot run code.
- Checkpoints and model folders carry a manifest (:mod:`spikebert.training.manifest`, written
  last) and are verified when read: a damaged checkpoint falls back to the one before it (the last
  ``keep`` are kept, ``TrainArgs.keep_checkpoints``); with none left, one clear error. A full disk
  while writing is one clear error, and leaves what was there before.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from spikebert.errors import SpikeBertError, first_line
from spikebert.training.manifest import MANIFEST, atomic_write_text, no_space, remove_manifest, verify, write_manifest

KEEP_CHECKPOINTS = 2  # the newest checkpoint and one to fall back to (--keep-checkpoints)


def write_json(path: Path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_state_dict(state: dict, path: Path):
    """safetensors file of a state dict, atomically (shared tensors are cloned apart)."""
    os.replace(_staged_state_dict(state, Path(path)), path)


def _staged_state_dict(state: dict, path: Path) -> Path:
    """The safetensors file of ``state`` written whole and synced under a temporary name beside
    ``path`` (returned); nothing of it is left when the write fails (a full disk: a clear error)."""
    tmp = path.with_name(f".{path.name}.tmp")
    seen, clean = set(), {}
    for k, v in state.items():
        v = v.detach().cpu()
        key = (v.data_ptr(), v.shape, v.stride()) if v.numel() else None
        clean[k] = v.clone().contiguous() if key in seen else v.contiguous()
        seen.add(key)
    try:
        with no_space(path):
            save_file(clean, str(tmp))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def check_output_dir(path, need_bytes: int = 0) -> Path:
    """Fail before training if the output folder cannot be written or the disk is nearly full.
    Every process of a run probes the folder at once: each writes a file of its own name and
    removes only that one (a shared name let one process delete another's probe)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".write-test-")
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise SpikeBertError(f"{p}: output folder is not writable ({e.strerror or e})") from None
    free = shutil.disk_usage(p).free
    if need_bytes and free < need_bytes:
        raise SpikeBertError(f"{p}: only {free / 2**20:.0f} MiB free on disk, training needs about "
                             f"{need_bytes / 2**20:.0f} MiB for checkpoints and the model")
    return p


def publish_model(model, tokenizer, out: Path, metrics: dict | None = None, extra_files: dict | None = None):
    """Save a standard `transformers` folder: weights, tokenizer, then config, then metrics, then
    the manifest of them all. The weights are written whole under a temporary name before anything
    of the folder there before is touched (a full disk leaves that folder as it was)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = _staged_state_dict(model.state_dict(), out / "model.safetensors")
    config_path = out / "config.json"
    remove_manifest(out)  # a folder being replaced stops looking verified, then complete
    if config_path.exists():
        config_path.unlink()
    (out / "metrics.json").unlink(missing_ok=True)
    os.replace(weights, out / "model.safetensors")
    files = ["model.safetensors", "config.json", *(extra_files or {})]
    if tokenizer is not None:
        with no_space(out):
            saved = tokenizer.save_pretrained(str(out))
        files += [Path(f).name for f in saved if Path(f).parent.resolve() == out.resolve() and Path(f).is_file()]
    for name, text in (extra_files or {}).items():
        atomic_write_text(out / name, text)
    model.config.architectures = [type(model).__name__]
    atomic_write_text(config_path, model.config.to_json_string())
    if metrics is not None:
        write_json(out / "metrics.json", metrics)
        files.append("metrics.json")
    write_manifest(out, files)


# ---------------------------------------------------------------------------------------------
# Training checkpoints


def rng_state() -> dict:
    py = random.getstate()
    return {"torch": torch.get_rng_state(), "python": [py[0], list(py[1]), py[2]]}


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))


def save_checkpoint(folder: Path, step: int, trainable: torch.nn.Module, train_state: dict,
                    keep: int = KEEP_CHECKPOINTS):
    """``train_state``: optimizer/scheduler state dicts, counters, metrics, RNG states. The newest
    ``keep`` checkpoints stay (one to fall back to when the newest is found damaged)."""
    root = Path(folder) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        save_state_dict(trainable.state_dict(), tmp / "model.safetensors")
        buf = tmp / "trainer_state.pt"
        with no_space(root):
            torch.save(train_state, buf)
            with open(buf, "rb") as fh:
                os.fsync(fh.fileno())
        write_manifest(tmp, ["model.safetensors", "trainer_state.pt"])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(root / "latest", name)
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    root = Path(folder) / "checkpoints"
    marker = root / "latest"
    if not marker.exists():
        return None
    try:
        path = root / marker.read_text().strip()
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return path if path.name.startswith("step-") and path.is_dir() else None


def checkpoints_newest_first(folder: Path) -> list[Path]:
    """Every complete checkpoint folder, the one ``latest`` names first, then by step, newest first."""
    root = Path(folder) / "checkpoints"
    steps = sorted((p for p in root.glob("step-*") if p.is_dir()), reverse=True)
    latest = latest_checkpoint(folder)
    return ([latest] if latest else []) + [p for p in steps if p != latest]


def load_good_checkpoint(folder: Path, trainable: torch.nn.Module, log=print) -> tuple[Path, dict] | None:
    """The newest checkpoint that verifies and loads into ``trainable`` (its path and training
    state), falling back past damaged ones, each named in one line; None when there is none at
    all. Only damaged ones: one clear error naming the newest and what to do. A checkpoint without
    a manifest (an older version's) is read with the loaders' own checks."""
    tried = checkpoints_newest_first(folder)
    first_problem = None
    for i, ckpt in enumerate(tried):
        problems = verify(ckpt) if (ckpt / MANIFEST).exists() else []
        try:
            if problems:
                raise SpikeBertError(problems[0])
            return ckpt, load_checkpoint(ckpt, trainable)
        except CheckpointMismatch:
            raise
        except SpikeBertError as e:
            first_problem = first_problem or str(e)
            problem = str(e).removeprefix(f"{ckpt}: ").replace(f"{ckpt}/", "")
            after = f"falling back to {tried[i + 1]}" if i + 1 < len(tried) else "no checkpoint is left"
            log(f"checkpoint {ckpt} is damaged ({problem}): {after}")
    if first_problem is None:
        return None
    root = Path(folder) / "checkpoints"
    raise SpikeBertError(f"no usable checkpoint in {root}: {first_problem}. Restore the folder from a copy, "
                         f"or delete {root} to train from the beginning")


class CheckpointMismatch(SpikeBertError):
    """A whole checkpoint of another model (other settings in the same --output): not damage."""


def load_checkpoint(path: Path, trainable: torch.nn.Module) -> dict:
    """Restores the weights into ``trainable`` and returns the training state."""
    try:
        state = load_file(str(path / "model.safetensors"))
        train_state = torch.load(path / "trainer_state.pt", weights_only=True)
    except Exception as e:
        raise SpikeBertError(f"{path}: checkpoint cannot be read ({first_line(e)})") from None
    missing = set(trainable.state_dict()) ^ set(state)
    if missing:
        raise CheckpointMismatch(f"{path}: checkpoint does not match this run's model ({sorted(missing)[0]}); "
                             "was --output reused with other settings?")
    try:
        trainable.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointMismatch(f"{path}: checkpoint does not match this run's model: {str(e).splitlines()[-1].strip()}") from None
    return train_state
