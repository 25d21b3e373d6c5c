"""Resources stay bounded whatever the archive holds: a sparse VM image (RLE blocks that decode
to a hundred thousand times their size) never makes verify, restore or the backup's own
read-back hold it in memory, and a restored sparse file stays sparse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zstandard

from backupkit.archive.zstdblocks import BLOCKS_PER_PIECE, BlockCutter
from fixtures import StateTree, build_state

from .conftest import peak_rss_mb, run_cli

MAX_BLOCK = 128 << 10


@pytest.mark.parametrize(
    "payload",
    [
        bytes(64 << 20),  # RLE blocks: a few bytes of input each
        os.urandom(3 << 20),  # raw blocks
        b"a fairly compressible line of text\n" * 200_000,
        b"",
    ],
    ids=["zeros", "random", "text", "empty"],
)
def test_the_cutter_keeps_every_decompress_call_within_a_few_blocks(payload: bytes) -> None:
    frame = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(payload)
    cutter = BlockCutter()
    dobj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=False)
    out = bytearray()
    for start in range(0, len(frame), 1 << 20):
        for piece, _ends_frame in cutter.cut(frame[start : start + (1 << 20)]):
            got = dobj.decompress(piece)
            assert len(got) <= (BLOCKS_PER_PIECE + 1) * MAX_BLOCK
            out += got
    assert bytes(out) == payload and dobj.eof


def _sparse_state(tmp_path: Path, size: int) -> tuple[StateTree, Path]:
    state = build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=4096, with_socket=False)
    image = state.root / "workspace" / "vm.img"
    with open(image, "wb") as fh:
        fh.truncate(size)  # a preallocated image with no data: all one hole
    return state, image


# Larger than the memory bound: decoding it whole, as one decompress call did, breaks it.
BIG = 320 << 20


def test_backup_verify_and_restore_of_a_sparse_image_stay_under_256_mb(tmp_path: Path) -> None:
    state, image = _sparse_state(tmp_path, BIG)
    out = tmp_path / "out"
    code, backup_mb = peak_rss_mb("--state-dir", state.root, "backup", "--output", out)
    assert code == 0
    archive = next(out.glob("*.tar.zst"))
    code, verify_mb = peak_rss_mb("verify", archive, "--no-record")
    assert code == 0
    target = tmp_path / "restored"
    code, restore_mb = peak_rss_mb("restore", archive, "--target", target)
    assert code == 0
    assert max(backup_mb, verify_mb, restore_mb) < 256, (backup_mb, verify_mb, restore_mb)
    restored = target / "workspace" / "vm.img"
    assert restored.stat().st_size == image.stat().st_size
    assert restored.stat().st_blocks * 512 < 1 << 20, "the restored image is sparse again"


def test_an_in_place_restore_brings_a_sparse_file_back_sparse(tmp_path: Path) -> None:
    state, image = _sparse_state(tmp_path, 64 << 20)
    out = tmp_path / "out"
    assert run_cli("--state-dir", state.root, "backup", "--output", out).returncode == 0
    archive = next(out.glob("*.tar.zst"))
    image.unlink()
    proc = run_cli(
        "--state-dir", state.root, "restore", archive, "--in-place", "--force", "--output", out
    )
    assert proc.returncode == 0, proc.stderr
    assert image.stat().st_size == 64 << 20
    assert image.stat().st_blocks * 512 < 1 << 20
