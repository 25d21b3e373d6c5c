"""`backupkit verify` on sound archives: what it says, where it records the proof, and that it
works (and writes nothing) on a machine that has no state at all.

The damaged and forged archives are in test_verify_corruption.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from fixtures import StateTree, hostile
from tests.conftest import (
    Archived,
    backup_ok,
    live_rows,
    manifest_of,
    run_cli,
    run_verify,
    tree_snapshot,
)


def verify_rows(state: StateTree, archive: Path) -> list[tuple[Any, ...]]:
    """The ledger rows verify wrote for `archive` (backup writes its own, status ok/failed)."""
    rows = live_rows(state.global_db).get("backup_runs", [])
    return [r for r in rows if r[2] == os.fspath(archive) and str(r[3]).startswith("verify")]


def two_defects(archive: Path, into: Path) -> Path:
    """A copy of `archive` whose manifest lies about a size and about a sha256."""
    into.write_bytes(hostile.lie_about_size(hostile.lie_about_sha256(archive.read_bytes())))
    return into


def test_a_fresh_backup_verifies_with_every_database_checked(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir, "--no-verify")
    verdict = run_verify(archive, "--no-record")
    assert verdict.code == 0, verdict.stderr
    assert verdict.report["ok"] is True and verdict.defects == []
    listed = {db["archive_path"] for db in manifest_of(archive)["databases"]}
    checked = {db["archive_path"]: db for db in verdict.report["databases"]}
    assert set(checked) == listed
    assert all(db["integrity"] == "ok" and db["findings"] == [] for db in checked.values())


def test_a_good_archive_verifies_on_a_machine_without_the_state_dir_and_creates_nothing(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    moved = state.root.with_name("openclaw-elsewhere")
    state.root.rename(moved)
    home, tmpdir = tmp_path / "home", tmp_path / "tmpdir"
    home.mkdir()
    tmpdir.mkdir()
    before = tree_snapshot(moved), tree_snapshot(out_dir)

    verdict = run_verify(archive, env={"HOME": os.fspath(home), "TMPDIR": os.fspath(tmpdir)})

    assert verdict.code == 0, verdict.stderr
    assert verdict.report["ok"] is True
    assert verdict.report["recorded"] is False
    assert any("not recorded" in w for w in verdict.report["warnings"])
    assert not state.root.exists()
    assert (tree_snapshot(moved), tree_snapshot(out_dir)) == before
    assert list(home.iterdir()) == [] and list(tmpdir.iterdir()) == []


def test_verify_records_its_result_in_the_ledger_of_the_state_it_came_from(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir, "--no-verify")
    verdict = run_verify(archive)
    assert verdict.code == 0, verdict.stderr
    assert verdict.report["recorded"] is True
    [row] = verify_rows(state, archive)
    _id, _created, archive_path, status, body = row
    assert (archive_path, status) == (os.fspath(archive), "verify-ok")
    recorded = orjson.loads(body)
    assert recorded["ok"] is True and recorded["defects"] == []
    assert {db["archive_path"] for db in recorded["databases"]} == {
        db["archive_path"] for db in verdict.report["databases"]
    }
    assert all(db["integrity"] == "ok" for db in recorded["databases"])


def test_a_failed_verify_is_recorded_as_failed_with_its_defects(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    bad = two_defects(backup_ok(state, out_dir), tmp_path / "bad.tar.zst")
    verdict = run_verify(bad)
    assert verdict.code == 1
    [row] = verify_rows(state, bad)
    assert row[2:4] == (os.fspath(bad), "verify-failed")
    assert orjson.loads(row[4])["defects"] == verdict.defects


def test_state_dir_option_records_into_that_state(state: StateTree, out_dir: Path) -> None:
    archive = backup_ok(state, out_dir, "--no-verify")
    moved = state.root.with_name("openclaw-restored-here")
    state.root.rename(moved)
    verdict = run_verify(archive, state_dir=moved)
    assert verdict.code == 0, verdict.stderr
    assert verdict.report["recorded"] is True
    rows = live_rows(moved / "state" / "openclaw.sqlite")["backup_runs"]
    assert sorted(r[3] for r in rows if r[2] == os.fspath(archive)) == ["ok", "verify-ok"]


def test_no_record_writes_no_ledger_row_and_leaves_the_state_untouched(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir, "--no-verify")
    before = tree_snapshot(state.root)
    verdict = run_verify(archive, "--no-record")
    assert verdict.code == 0, verdict.stderr
    assert verdict.report["recorded"] is False
    assert tree_snapshot(state.root) == before
    assert verify_rows(state, archive) == []


@pytest.fixture(scope="module")
def unrecorded_bad(archived: Archived, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared archive with two defects, for tests that verify it with --no-record only."""
    return two_defects(archived.archive, tmp_path_factory.mktemp("bad") / "bad.tar.zst")


def test_json_lists_every_defect_of_a_bad_archive(unrecorded_bad: Path) -> None:
    verdict = run_verify(unrecorded_bad, "--no-record")
    assert verdict.code == 1
    assert verdict.report["ok"] is False
    assert len(verdict.defects) == 2
    assert any("size" in d for d in verdict.defects)
    assert any("sha256" in d for d in verdict.defects)
    assert all(db["integrity"] == "ok" for db in verdict.report["databases"])


def test_human_output_is_one_line_per_defect_and_a_summary(unrecorded_bad: Path) -> None:
    bad = unrecorded_bad
    proc = run_cli("verify", "--no-record", bad)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    assert all(line.startswith("defect: ") for line in lines[:2])
    assert "size" in lines[0] + lines[1] and "sha256" in lines[0] + lines[1]
    assert lines[2].startswith(os.fspath(bad)) and "FAILED (2 defects)" in lines[2]
    [error] = proc.stderr.splitlines()
    assert error.startswith("backupkit: error: ") and os.fspath(bad) in error


def test_human_output_of_a_good_archive_is_one_ok_line(archived: Archived) -> None:
    archive = archived.archive
    proc = run_cli("verify", "--no-record", archive)
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines()
    assert line.startswith(f"{archive}: OK")
    assert proc.stderr == ""


def test_a_missing_archive_is_bad_input(tmp_path: Path) -> None:
    verdict = run_verify(tmp_path / "nowhere.tar.zst")
    assert verdict.code == 2
    assert "does not exist" in verdict.error


def test_a_directory_is_not_an_archive(tmp_path: Path) -> None:
    verdict = run_verify(tmp_path)
    assert verdict.code == 2
    assert "directory" in verdict.error


def test_verify_leaves_no_temporary_copy_behind_even_when_a_database_is_bad(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    forged = tmp_path / "forged.tar.zst"
    forged.write_bytes(hostile.forge_database_page(backup_ok(state, out_dir).read_bytes()))
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    verdict = run_verify(forged, "--no-record", env={"TMPDIR": os.fspath(tmpdir)})
    assert verdict.code == 1
    assert list(tmpdir.iterdir()) == []
