"""The frame reader on hand-made zstd streams: a frame that ends, a frame cut short, data after
the frame, a seal cut short, and extended tar headers larger than the bound."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import zstandard

from backupkit.archive.format import seal_bytes
from backupkit.archive.reader import MAX_HEADER_BYTES, ZstdFrameReader, iter_members
from backupkit.errors import InputError, IntegrityError


def _frame(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


def _read_all(raw: bytes) -> bytes:
    reader = ZstdFrameReader(io.BytesIO(raw))
    return reader.read()


def test_a_whole_frame_reads_back_exactly() -> None:
    payload = bytes(range(256)) * 5000
    assert _read_all(_frame(payload)) == payload


def test_a_frame_cut_short_is_truncated() -> None:
    raw = _frame(bytes(range(256)) * 5000)
    with pytest.raises(IntegrityError, match=r"truncated|corrupt"):
        _read_all(raw[: len(raw) // 2])


def test_data_after_the_frame_is_a_defect() -> None:
    with pytest.raises(IntegrityError, match="trailing data"):
        _read_all(_frame(b"x" * 1000) + b"junk")


def test_a_seal_cut_short_after_the_frame_is_called_truncated() -> None:
    seal = seal_bytes(b"\x00" * 32)
    with pytest.raises(IntegrityError, match="seal"):
        _read_all(_frame(b"x" * 1000) + seal[:10])


def test_the_reader_hashes_every_compressed_byte() -> None:
    import hashlib

    raw = _frame(b"y" * 100_000)
    reader = ZstdFrameReader(io.BytesIO(raw))
    reader.read()
    assert reader.digest.hexdigest() == hashlib.sha256(raw).hexdigest()


def _archive_with_pax(tmp_path: Path, pax_bytes: int) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("state/x")
        info.size = 1
        info.pax_headers = {"comment": "a" * pax_bytes}
        tar.addfile(info, io.BytesIO(b"x"))
    path = tmp_path / "a.tar.zst"
    path.write_bytes(_frame(buf.getvalue()))
    return path


def test_an_extended_header_within_the_bound_is_read(tmp_path: Path) -> None:
    names = [m.name for m, _t, _s in iter_members(_archive_with_pax(tmp_path, 1000))]
    assert names == ["state/x"]


def test_an_extended_header_over_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="extended header"):
        list(iter_members(_archive_with_pax(tmp_path, MAX_HEADER_BYTES + 1)))


def test_a_fifo_given_as_an_archive_is_refused_without_waiting(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        list(iter_members(fifo))
