"""Plain output speaks in sizes and durations people read: what was read beside what the archive
holds, `list` as a table under a header, `status` in seconds, minutes or hours as they fit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from freezegun import freeze_time

import backupkit
from backupkit.cli.units import duration, ratio, size
from fixtures import StateTree, build_state

from .conftest import json_out, manifest_of, run_cli


@pytest.fixture
def small(tmp_path: Path) -> StateTree:
    return build_state(
        tmp_path / "openclaw", agents=2, bytes_per_agent=64 * 1024, with_socket=False
    )


def _input_bytes(archive: Path) -> int:
    m = manifest_of(archive)
    return sum(d["size_bytes"] for d in m["databases"]) + sum(f["size_bytes"] for f in m["files"])


@pytest.mark.parametrize(
    ("n", "text"),
    [(512, "512 B"), (4300, "4.2 KiB"), (15_699_550, "15.0 MiB"), (3 << 30, "3.0 GiB")],
)
def test_sizes_are_binary_units_with_one_decimal(n: int, text: str) -> None:
    assert size(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.04s"), (4.25, "4.2s"), (20, "20s"), (185, "3m 05s"), (11_100, "3h 05m")],
)
def test_durations_grow_their_unit_with_their_length(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_backup_says_what_it_read_beside_what_the_archive_holds(
    small: StateTree, out_dir: Path
) -> None:
    proc = run_cli("--state-dir", small.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    archive = Path(proc.stdout.strip())
    m = manifest_of(archive)
    read, held = _input_bytes(archive), archive.stat().st_size
    expected = (
        f"{len(m['databases'])} databases, {len(m['files'])} files: "
        f"{size(read)} read, {size(held)} archive ({ratio(read, held)})"
    )
    assert expected in proc.stderr
    assert " bytes" not in proc.stderr


def test_verify_says_the_content_size_beside_the_archive_size(
    small: StateTree, out_dir: Path
) -> None:
    archive = backupkit.create_backup(small.root, output=out_dir).archive
    proc = run_cli("verify", archive, "--no-record")
    assert proc.returncode == 0, proc.stderr
    read, held = _input_bytes(archive), archive.stat().st_size
    assert f"{size(read)} of content, {size(held)} archive ({ratio(read, held)})" in proc.stdout


def test_a_dry_run_sizes_each_item_in_human_units(small: StateTree, out_dir: Path) -> None:
    proc = run_cli("--state-dir", small.root, "backup", "--output", out_dir, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    plan = json_out(
        run_cli("--state-dir", small.root, "backup", "--output", out_dir, "--dry-run", "--json")
    )
    assert f"total: {size(plan['input_bytes'])} to read" in proc.stdout
    assert re.search(r"\(\d+ bytes\)", proc.stdout) is None


def test_list_is_a_table_under_a_header_with_sizes_aligned(small: StateTree, out_dir: Path) -> None:
    archives = [backupkit.create_backup(small.root, output=out_dir).archive for _ in range(2)]
    proc = run_cli("--state-dir", small.root, "list", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split("  ")[0] == "BACKUP ID" and "SIZE" in header and "LAST CHECK" in header
    assert len(rows) == len(archives)
    size_end = header.index("SIZE") + len("SIZE")
    for row, archive in zip(rows, reversed(archives), strict=True):
        text = size(archive.stat().st_size)
        assert row[size_end - len(text) : size_end] == text, (header, row)


@pytest.mark.parametrize(("later", "shown"), [(20, "20s old"), (3 * 3600 + 300, "3h 05m old")])
def test_status_says_the_age_in_the_unit_that_fits_it(
    small: StateTree, out_dir: Path, later: int, shown: str
) -> None:
    with freeze_time("2026-03-01 03:00:00") as clock:
        backupkit.create_backup(small.root, output=out_dir)
        clock.tick(later)
        proc = run_cli("--state-dir", small.root, "status", "--output", out_dir)
    assert proc.returncode == 0, proc.stdout
    assert shown in proc.stdout


def test_a_restore_says_how_much_it_wrote(small: StateTree, out_dir: Path, tmp_path: Path) -> None:
    archive = backupkit.create_backup(small.root, output=out_dir).archive
    proc = run_cli("restore", archive, "--target", tmp_path / "drill")
    assert proc.returncode == 0, proc.stderr
    assert f"({size(_input_bytes(archive))} written)" in proc.stdout
