"""Each run is recorded in backup_runs, after its archive is complete."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from fixtures import StateTree
from tests.conftest import backup_ok, extract_with_tar, manifest_of, run_cli


def _rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT id, created_at, archive_path, status, manifest_json FROM backup_runs"
        ).fetchall()
    finally:
        conn.close()


def test_backup_adds_one_ok_row_holding_the_manifest(state: StateTree, out_dir: Path) -> None:
    archive = backup_ok(state, out_dir, "--no-verify")
    manifest = manifest_of(archive)
    rows = [r for r in _rows(state.global_db) if r[0] == manifest["backup_id"]]
    assert len(rows) == 1
    _id, created_at, archive_path, status, body = rows[0]
    assert (archive_path, status) == (str(archive), "ok")
    assert created_at > 1_700_000_000_000  # milliseconds
    assert orjson.loads(body) == manifest


def test_an_archive_never_holds_its_own_row(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    first = backup_ok(state, out_dir)
    second = backup_ok(state, out_dir)
    extract_with_tar(second, tmp_path / "x")
    inside = {r[0] for r in _rows(tmp_path / "x" / "state" / "state" / "openclaw.sqlite")}
    assert manifest_of(first)["backup_id"] in inside
    assert manifest_of(second)["backup_id"] not in inside


def test_a_missing_backup_runs_table_is_created_with_exactly_the_contract_columns(
    state: StateTree, out_dir: Path
) -> None:
    conn = sqlite3.connect(state.global_db)
    conn.execute("DROP TABLE backup_runs")
    conn.commit()
    conn.close()
    backup_ok(state, out_dir)
    conn = sqlite3.connect(f"file:{state.global_db}?mode=ro", uri=True)
    cols = [(r[1], r[2], r[5]) for r in conn.execute("PRAGMA table_info(backup_runs)")]
    conn.close()
    assert cols == [
        ("id", "TEXT", 1),
        ("created_at", "INTEGER", 0),
        ("archive_path", "TEXT", 0),
        ("status", "TEXT", 0),
        ("manifest_json", "TEXT", 0),
    ]


def test_backup_records_its_read_back_and_a_later_verify_adds_a_verify_row(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir)
    backup_id = manifest_of(archive)["backup_id"]

    def verifies() -> list[tuple]:
        return sorted(
            (r for r in _rows(state.global_db) if r[3].startswith(("verify", "read-back"))),
            key=lambda r: r[1],
        )

    assert [r[3] for r in verifies()] == ["read-back-ok"]
    proc = run_cli("verify", archive)
    assert proc.returncode == 0, proc.stderr
    rows = verifies()
    assert [r[3] for r in rows] == ["read-back-ok", "verify-ok"]
    assert {orjson.loads(r[4])["backup_id"] for r in rows} == {backup_id}
    ids = [r[0] for r in _rows(state.global_db)]
    assert ids.index(backup_id) < ids.index(rows[0][0]), "the backup row comes first"


def test_no_verify_records_no_verify_row(state: StateTree, out_dir: Path) -> None:
    backup_ok(state, out_dir, "--no-verify")
    assert not [r for r in _rows(state.global_db) if r[3].startswith("verify")]
