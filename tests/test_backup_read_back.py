"""A backup proves its own archive by reading the published file back: the compressed bytes must
match the seal computed as they were written, and they must decode (zstd content checksum) to
exactly as many bytes as went in."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from backupkit import create_backup
from backupkit.backup import BackupResult, _verify_own_archive
from backupkit.locations import existing_layout
from fixtures import StateTree


@pytest.fixture
def unproven(state: StateTree, out_dir: Path) -> BackupResult:
    result = create_backup(state.root, output=out_dir, verify=False)
    assert result.ok and result.verified is None
    return result


def _prove(result: BackupResult, state: StateTree) -> BackupResult:
    report = _verify_own_archive(result, existing_layout(state.root), None)
    assert report.ok == bool(result.verified)
    return result


def test_an_untouched_archive_passes_the_read_back(
    unproven: BackupResult, state: StateTree
) -> None:
    result = _prove(unproven, state)
    assert result.verified is True and result.status == "ok"


def test_any_byte_changed_after_writing_fails_the_read_back(
    unproven: BackupResult, state: StateTree
) -> None:
    original = unproven.archive.read_bytes()
    seeded = random.Random(7).sample(range(len(original)), 25)
    offsets = [0, 5, len(original) - 1, len(original) - 40, *seeded]
    passed = []
    for offset in offsets:
        data = bytearray(original)
        data[offset] ^= 0x01
        unproven.archive.write_bytes(bytes(data))
        unproven.status, unproven.verified, unproven.problems = "ok", None, []
        if _prove(unproven, state).verified:
            passed.append(offset)
    assert passed == []


def test_a_cut_off_archive_fails_the_read_back(unproven: BackupResult, state: StateTree) -> None:
    data = unproven.archive.read_bytes()
    unproven.archive.write_bytes(data[: len(data) // 2])
    result = _prove(unproven, state)
    assert result.verified is False and result.status == "failed"
    assert any("verify:" in p for p in result.problems)
