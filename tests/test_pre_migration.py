"""Pre-migration safety snapshots: one call, proven, and the way back works byte for byte."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

import backupkit
from fixtures import StateTree
from tests.conftest import fingerprint, manifest_of, run_cli


def _migrate_sessions_then_fail(state: StateTree) -> None:
    """What doctor --fix does: import sessions.json into SQLite rows, delete the legacy files,
    then fall over."""
    for legacy in [p for p in state.legacy_files if p.name == "sessions.json"]:
        agent_db = legacy.parent.parent / "agent" / "openclaw-agent.sqlite"
        sessions = json.loads(legacy.read_text())
        conn = sqlite3.connect(agent_db)
        for key, entry in sessions.items():
            conn.execute(
                "INSERT OR REPLACE INTO session_entries(session_key, entry_json, updated_at) "
                "VALUES (?, ?, 0)",
                (f"imported:{key}", json.dumps(entry)),
            )
        conn.commit()
        conn.close()
    for legacy in state.legacy_files:
        legacy.unlink()
    raise RuntimeError("migration step 3 failed")


def test_snapshot_migrate_fail_and_roll_back_restores_every_byte_and_row(
    state: StateTree, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fingerprint(state.root)
    legacy_bytes = {p: p.read_bytes() for p in state.legacy_files}
    with (
        pytest.raises(RuntimeError) as info,
        backupkit.safety_snapshot(state.root, output=out_dir) as snap,
    ):
        _migrate_sessions_then_fail(state)
    assert snap.manifest.reason == "pre-migration"
    assert not state.legacy_files[0].exists()
    assert capsys.readouterr().err == "", "the library never prints"
    assert snap.rollback_command in "\n".join(info.value.__notes__)
    legacy_in_archive = {f.source_path for f in snap.manifest.files if f.kind == "legacy"}
    assert legacy_in_archive == {os.fspath(p) for p in state.legacy_files}

    proc = run_cli(
        "--state-dir", state.root, "restore", snap.archive, "--in-place", "--output", out_dir
    )
    assert proc.returncode == 0, proc.stderr
    assert {p: p.read_bytes() for p in state.legacy_files} == legacy_bytes
    assert fingerprint(state.root) == before


def test_snapshot_returns_path_and_id_for_the_migration_report(
    state: StateTree, out_dir: Path
) -> None:
    snap = backupkit.safety_snapshot(state.root, output=out_dir)
    assert snap.archive.is_file() and snap.status == "ok"
    assert snap.backup_id == manifest_of(snap.archive)["backup_id"]
    assert run_cli("verify", snap.archive, "--no-record").returncode == 0


def test_snapshot_raises_and_leaves_no_archive_when_a_database_cannot_be_proven(
    state: StateTree, out_dir: Path
) -> None:
    bad = state.agent_dbs["main"]
    for side in ("-wal", "-shm"):
        Path(f"{bad}{side}").unlink(missing_ok=True)
    bad.write_bytes(b"not a database" * 1000)
    with pytest.raises(backupkit.BackupError) as info:
        backupkit.safety_snapshot(state.root, output=out_dir)
    assert info.value.exit_code == 1
    assert "do not migrate" in str(info.value) and os.fspath(bad) in str(info.value)
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".tar.zst")]


def test_cli_pre_migration_cannot_skip_verification(state: StateTree, out_dir: Path) -> None:
    proc = run_cli(
        "--state-dir",
        state.root,
        "backup",
        "--reason",
        "pre-migration",
        "--no-verify",
        "--json",
        "--output",
        out_dir,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verified"] is True


def test_cli_pre_migration_with_an_unprovable_database_exits_1_and_keeps_no_archive(
    state: StateTree, out_dir: Path
) -> None:
    bad = state.agent_dbs["zoe"]
    for side in ("-wal", "-shm"):
        Path(f"{bad}{side}").unlink(missing_ok=True)
    bad.write_bytes(b"garbage" * 100)
    proc = run_cli(
        "--state-dir", state.root, "backup", "--reason", "pre-migration", "--output", out_dir
    )
    assert proc.returncode == 1
    assert "removed" in proc.stderr
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".tar.zst")]
