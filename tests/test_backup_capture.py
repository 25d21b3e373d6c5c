"""Backup captures every database exactly, including committed rows that live only in the WAL."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from pathlib import Path

from fixtures import StateTree
from tests.conftest import (
    Archived,
    all_databases,
    archive_members,
    backup_ok,
    extract_with_tar,
    manifest_of,
    table_rows,
)


def test_fixture_really_has_rows_only_in_the_wal(state: StateTree) -> None:
    # Guards the premise of the next test: without WAL-only rows it would prove nothing.
    for db, table, key in state.wal_only:
        assert Path(f"{db}-wal").stat().st_size > 0
        main_file_only = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
        col = "key" if table == "kv" else "session_key"
        seen = main_file_only.execute(f"SELECT 1 FROM {table} WHERE {col}=?", (key,)).fetchone()
        main_file_only.close()
        assert seen is None


def test_every_table_of_every_database_round_trips_row_for_row_through_stock_tar(
    archived: Archived, tmp_path: Path
) -> None:
    state, archive = archived.state, archived.archive
    before = archived.rows_before  # every database's rows before the backup ran
    extracted = tmp_path / "x"
    extract_with_tar(archive, extracted)
    manifest = manifest_of(archive)
    by_source = {d["source_path"]: d for d in manifest["databases"]}
    assert set(by_source) == {os.fspath(db) for db in all_databases(state)}
    for db, rows in before.items():
        snapshot = extracted / by_source[os.fspath(db)]["archive_path"]
        assert table_rows(snapshot) == rows, f"{db} differs"
    for db, table, key in state.wal_only:
        snapshot = extracted / by_source[os.fspath(db)]["archive_path"]
        col = "key" if table == "kv" else "session_key"
        conn = sqlite3.connect(snapshot)
        assert conn.execute(f"SELECT 1 FROM {table} WHERE {col}=?", (key,)).fetchone() == (1,)
        conn.close()


def test_snapshots_pass_the_stock_sqlite3_integrity_check(
    archived: Archived, tmp_path: Path
) -> None:
    archive = archived.archive
    extract_with_tar(archive, tmp_path / "x")
    for entry in manifest_of(archive)["databases"]:
        out = subprocess.run(
            [
                "sqlite3",
                os.fspath(tmp_path / "x" / entry["archive_path"]),
                "PRAGMA integrity_check;",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == "ok", entry["archive_path"]


def test_manifest_holds_every_contract_field_and_true_sizes_and_hashes(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir, "--reason", "nightly")
    manifest = manifest_of(archive)
    for key in (
        "format",
        "format_version",
        "backup_id",
        "created_at",
        "reason",
        "tool_version",
        "state_dir",
        "databases",
        "files",
        "skipped",
    ):
        assert key in manifest
    assert manifest["format"] == "backupkit-archive" and manifest["format_version"] == 1
    assert manifest["reason"] == "nightly"
    assert manifest["created_at"].endswith("Z")
    assert archive.name == f"openclaw-backup-{manifest['backup_id']}.tar.zst"
    extract_with_tar(archive, tmp_path / "x")
    db_fields = {
        "role",
        "agent_id",
        "schema_version",
        "user_version",
        "source_path",
        "archive_path",
        "size_bytes",
        "sha256",
        "integrity",
    }
    file_fields = {"kind", "source_path", "archive_path", "size_bytes", "sha256", "mode"}
    for entry in manifest["databases"] + manifest["files"]:
        fields = db_fields if "role" in entry else file_fields
        assert fields <= set(entry), entry
        data = (tmp_path / "x" / entry["archive_path"]).read_bytes()
        assert len(data) == entry["size_bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    for entry in manifest["skipped"]:
        assert {"source_path", "reason"} <= set(entry)


def test_database_roles_and_agent_ids_come_from_schema_meta_not_directory_names(
    archived: Archived,
) -> None:
    state, archive = archived.state, archived.archive
    manifest = manifest_of(archive)
    by_source = {d["source_path"]: d for d in manifest["databases"]}
    assert by_source[os.fspath(state.global_db)]["role"] == "global"
    assert by_source[os.fspath(state.global_db)]["agent_id"] is None
    for agent_id, db in state.agent_dbs.items():
        entry = by_source[os.fspath(db)]
        assert (entry["role"], entry["agent_id"]) == ("agent", agent_id)
        assert entry["schema_version"] == 1 and entry["user_version"] == 1
    retired = by_source[os.fspath(state.agent_dbs["retired-agent"])]
    assert retired["archive_path"] == "state/agents/Retired Agent/agent/openclaw-agent.sqlite"
    foreign = by_source[os.fspath(state.foreign_db)]
    assert (foreign["role"], foreign["schema_version"], foreign["user_version"]) == (
        "other",
        None,
        0,
    )
    assert by_source[os.fspath(state.quarantine_db)]["role"] == "other"


def test_a_database_registered_twice_is_captured_once(state: StateTree, out_dir: Path) -> None:
    conn = sqlite3.connect(state.global_db)
    main = state.agent_dbs["main"]
    # The same file registered again through a path with a "." and "..": one database, one entry.
    odd = f"{main.parent}/./../agent/{main.name}"
    conn.execute("INSERT INTO agent_databases(agent_id, path) VALUES ('main-alias', ?)", (odd,))
    conn.commit()
    conn.close()
    manifest = manifest_of(backup_ok(state, out_dir))
    paths = [d["archive_path"] for d in manifest["databases"]]
    assert len(paths) == len(set(paths))
    assert paths.count("state/agents/main/agent/openclaw-agent.sqlite") == 1


def test_agent_database_outside_the_state_dir_goes_under_external(archived: Archived) -> None:
    state, archive = archived.state, archived.archive
    ext = state.agent_dbs["external-agent"]
    entry = next(d for d in manifest_of(archive)["databases"] if d["agent_id"] == "external-agent")
    assert entry["source_path"] == os.fspath(ext)
    assert entry["archive_path"] == "external/" + os.fspath(ext).lstrip("/")
    assert entry["archive_path"] in archive_members(archive)
