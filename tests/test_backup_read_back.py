"""A backup proves its own archive by reading the published file back: the compressed bytes must
match the seal computed as they were written, and they must decode (zstd content checksum) to
exactly as many bytes as went in."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from backupkit import create_backup
from backupkit.backup.pipeline import BackupResult
from backupkit.backup.readback import read_back_defects
from fixtures import StateTree


@pytest.fixture
def unproven(state: StateTree, out_dir: Path) -> BackupResult:
    result = create_backup(state.root, output=out_dir, verify=False)
    assert result.ok and result.verified is None
    return result


def _defects(result: BackupResult) -> list[str]:
    assert result.written is not None
    return read_back_defects(result.archive, result.written)


def test_an_untouched_archive_passes_the_read_back(unproven: BackupResult) -> None:
    assert _defects(unproven) == []


def test_any_byte_changed_after_writing_fails_the_read_back(unproven: BackupResult) -> None:
    original = unproven.archive.read_bytes()
    seeded = random.Random(7).sample(range(len(original)), 25)
    offsets = [0, 5, len(original) - 1, len(original) - 40, *seeded]
    passed = []
    for offset in offsets:
        data = bytearray(original)
        data[offset] ^= 0x01
        unproven.archive.write_bytes(bytes(data))
        if not _defects(unproven):
            passed.append(offset)
    assert passed == []


def test_a_cut_off_archive_fails_the_read_back(unproven: BackupResult) -> None:
    data = unproven.archive.read_bytes()
    unproven.archive.write_bytes(data[: len(data) // 2])
    defects = _defects(unproven)
    assert defects and "truncated" in defects[0]
