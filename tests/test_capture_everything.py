"""A backup captures everything the state holds: any SQLite database whatever its name, every
user file whatever its name, and files that move while it runs are warnings, not failures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import backupkit
from backupkit.progress import ProgressEvent
from fixtures import StateTree, build_state
from fixtures.state import _write_wal_only as write_wal_only

from .conftest import extract_with_tar, live_rows, manifest_of, run_cli


@pytest.fixture
def small(tmp_path: Path) -> StateTree:
    return build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=8 * 1024, with_socket=False)


def _wal_database(path: Path) -> dict[str, list[tuple]]:
    """A WAL-mode database whose newest rows live only in its -wal (committed by a child that
    dies without a checkpoint), returned as the rows a restore must bring back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [(f"old {i}",) for i in range(10)])
    conn.close()
    statements = [
        ["INSERT INTO notes (body) VALUES (?)", [f"only in the WAL {i}"]] for i in range(40)
    ]
    write_wal_only([{"db": str(path), "statements": statements}])
    rows = live_rows(path)
    assert len(rows["notes"]) == 50
    return rows


@pytest.mark.parametrize("name", ["workspace/app.db", "workspace/tool.sqlite3", "workspace/cache"])
def test_a_database_under_any_name_comes_back_with_its_wal_rows(
    small: StateTree, out_dir: Path, tmp_path: Path, name: str
) -> None:
    db = small.root / name
    expected = _wal_database(db)
    assert Path(f"{db}-wal").stat().st_size > 0, "the rows must still be in the WAL"
    proc = run_cli("--state-dir", small.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    archive = Path(proc.stdout.strip())
    entries = {d["archive_path"]: d for d in manifest_of(archive)["databases"]}
    assert entries[f"state/{name}"]["captured_as"] == "snapshot"
    assert not any(m.endswith("-wal") for m in entries), "no sidecar is ever a member"
    target = tmp_path / "restored"
    assert run_cli("restore", archive, "--target", target).returncode == 0
    assert live_rows(target / name) == expected


def test_lock_and_journal_named_user_files_come_back_byte_identical(
    small: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    names = [
        "workspace/Cargo.lock",
        "workspace/web/yarn.lock",
        "workspace/dev-journal",
        "workspace/run.pid",
        "workspace/notes-wal",
    ]
    for i, name in enumerate(names):
        path = small.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"user data {i}\n".encode() * 40)
    proc = run_cli("--state-dir", small.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    archive = Path(proc.stdout.strip())
    extracted = tmp_path / "tar"
    extract_with_tar(archive, extracted)
    for name in names:
        assert (extracted / "state" / name).read_bytes() == (small.root / name).read_bytes()
    skipped = {Path(s["source_path"]).name: s["reason"] for s in manifest_of(archive)["skipped"]}
    assert skipped["gateway.pid"] == "pid-file", "the gateway's own pid file is still left out"


def _delete_when_packed(victim: Path, before: str) -> backupkit.progress.ProgressCallback:
    def hook(event: ProgressEvent) -> None:
        if event.stage == "pack" and event.detail == before and victim.exists():
            victim.unlink()

    return hook


def test_a_file_deleted_during_the_backup_is_a_warning_and_the_archive_verifies(
    small: StateTree, out_dir: Path
) -> None:
    inv = backupkit.plan_backup(small.root, output=out_dir).inventory
    order = [f.archive_path for f in inv.files]
    victim_entry = inv.files[len(order) // 2]
    previous = order[len(order) // 2 - 1]
    # The hook runs when the file before the victim is reported: deterministic, no sleep.
    result = backupkit.create_backup(
        small.root, output=out_dir, progress=_delete_when_packed(victim_entry.path, previous)
    )
    assert result.ok, result.problems
    assert any("vanished" in w for w in result.warnings)
    manifest = result.manifest
    assert {s.source_path: s.reason for s in manifest.skipped}[str(victim_entry.path)] == "vanished"
    assert str(victim_entry.path) not in {f.source_path for f in manifest.files}
    assert backupkit.verify_archive(result.archive, record=False).ok


def test_a_file_that_shrinks_while_it_is_read_is_kept_as_read_and_listed(
    small: StateTree, out_dir: Path
) -> None:
    big = small.root / "workspace" / "growing.log"
    big.write_bytes(b"x" * (3 << 20))
    inv = backupkit.plan_backup(small.root, output=out_dir).inventory
    order = [f.archive_path for f in inv.files]
    index = order.index("state/workspace/growing.log")

    started_at: list[int] = []  # the pack phase's bytes when the file began

    def truncate(event: ProgressEvent) -> None:
        # After its first MiB was read: the header already declared 3 MiB.
        if (event.stage, event.detail) != ("pack", "state/workspace/growing.log"):
            return
        if not started_at:
            started_at.append(event.done)
        elif event.done - started_at[0] == 1 << 20:
            with open(big, "r+b") as fh:
                fh.truncate(1 << 20)

    assert index >= 0
    result = backupkit.create_backup(small.root, output=out_dir, progress=truncate)
    assert result.ok, result.problems
    reasons = {s.source_path: s.reason for s in result.manifest.skipped}
    assert reasons[str(big)] == "changed"
    entry = next(f for f in result.manifest.files if f.source_path == str(big))
    assert entry.size_bytes == 3 << 20, "the member is as long as its header declared"
    assert backupkit.verify_archive(result.archive, record=False).ok


WRITER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
n = 0
print("ready", flush=True)
while True:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO log (body) VALUES (?)", ("x" * 200,))
    conn.execute("COMMIT")
    n += 1
    time.sleep(0.02)
"""


def test_a_rollback_journal_database_under_a_busy_writer_is_captured_every_time(
    small: StateTree, out_dir: Path
) -> None:
    import subprocess
    import sys

    db = small.root / "workspace" / "rollback.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO log (body) VALUES (?)", [("y" * 200,)] * 2000)
    conn.commit()
    conn.close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, db], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        outcomes = []
        for _ in range(20):
            result = backupkit.create_backup(small.root, output=out_dir, verify=False)
            entry = next(d for d in result.manifest.databases if d.source_path == str(db))
            outcomes.append((result.ok, entry.journal_mode, entry.integrity))
    finally:
        writer.kill()
        writer.wait()
    assert outcomes == [(True, "rollback", "ok")] * 20
