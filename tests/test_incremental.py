"""Nightly backups copy the members of unchanged databases from the newest good archive, and
only of databases proven unchanged: every archive still stands alone.

Each test settles a real state tree first (every WAL checkpointed, then the file system's
timestamp granularity waited out), so that the first backup records facts a later one may
trust; a database written just before a capture is captured in full the next time anyway.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backupkit.backup.pipeline import create_backup
from backupkit.backup.unchanged import FINE_GRANULARITY_NS
from backupkit.progress import ProgressEvent
from fixtures import StateTree, build_state

from .conftest import (
    extract_with_tar,
    json_out,
    live_rows,
    manifest_of,
    run_cli,
    run_verify,
    table_rows,
)

MAIN = "state/agents/main/agent/openclaw-agent.sqlite"


def _databases(state: StateTree) -> list[Path]:
    return [state.global_db, state.quarantine_db, *state.agent_dbs.values()]


def _settle(state: StateTree) -> None:
    """What a gateway's state looks like an hour after its last write: WALs folded in, and
    every main file's times older than any clock tick."""
    for db in _databases(state):
        conn = sqlite3.connect(db)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
    time.sleep(2 * FINE_GRANULARITY_NS / 1e9)


@pytest.fixture
def settled(tmp_path: Path) -> StateTree:
    state = build_state(tmp_path / "openclaw")
    _settle(state)
    return state


def _backup_json(state: StateTree, out_dir: Path, *extra: str) -> dict:
    proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir, "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json_out(proc)


def _reused(report: dict) -> dict[str, str | None]:
    return {d["archive_path"]: d["reused_from"] for d in report["databases"]}


def _commit(db: Path, *statements: str, checkpoint: bool = True) -> None:
    """Commit `statements` as the gateway would, then (by default) fold the WAL into the main
    file, as its next checkpoint would."""
    conn = sqlite3.connect(db)
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
        if checkpoint:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _change_rows(db: Path) -> None:
    """Rows inserted, updated and deleted."""
    _commit(
        db,
        "INSERT INTO session_entries VALUES ('nightly-new', '{\"n\": 1}', 1)",
        "UPDATE session_entries SET updated_at = updated_at + 1",
        "DELETE FROM session_entries WHERE session_key = "
        "(SELECT min(session_key) FROM session_entries WHERE session_key != 'nightly-new')",
    )


def test_an_unchanged_database_is_copied_from_the_earlier_archive_which_the_manifest_names(
    settled: StateTree, out_dir: Path
) -> None:
    first = _backup_json(settled, out_dir)
    second = _backup_json(settled, out_dir)
    reused = _reused(second)
    assert reused[MAIN] == first["backup_id"]
    # The global database changes with every run: its ledger row is written after the archive.
    assert reused["state/state/openclaw.sqlite"] is None
    entry = next(
        d for d in manifest_of(Path(second["archive"]))["databases"] if d["archive_path"] == MAIN
    )
    assert entry["reused_from"] == first["backup_id"]


def test_a_nightly_reuses_from_the_newest_archive_which_itself_reused(
    settled: StateTree, out_dir: Path
) -> None:
    _backup_json(settled, out_dir)
    second = _backup_json(settled, out_dir)
    third = _backup_json(settled, out_dir)
    assert _reused(third)[MAIN] == second["backup_id"]


def test_full_reuses_nothing(settled: StateTree, out_dir: Path) -> None:
    _backup_json(settled, out_dir)
    full = _backup_json(settled, out_dir, "--full")
    assert set(_reused(full).values()) == {None}


@pytest.fixture
def main_db(settled: StateTree, out_dir: Path) -> Path:
    """The main agent's live database, once a first backup of the settled state is written."""
    _backup_json(settled, out_dir)
    return settled.agent_dbs["main"]


def test_rows_changed_with_size_and_mtime_restored_are_captured_again(
    settled: StateTree, out_dir: Path, main_db: Path
) -> None:
    db = main_db
    before = os.stat(db)
    _commit(db, "UPDATE session_entries SET entry_json = upper(entry_json)")
    os.utime(db, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(db)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    nightly = _backup_json(settled, out_dir)
    assert _reused(nightly)[MAIN] is None
    restored = _restore(Path(nightly["archive"]), out_dir.parent / "restored")
    assert table_rows(restored / "agents/main/agent/openclaw-agent.sqlite") == table_rows(db)


def test_a_commit_still_in_the_wal_is_captured_though_the_main_file_is_untouched(
    settled: StateTree, out_dir: Path, main_db: Path
) -> None:
    db = main_db
    main_before = os.stat(db)
    # A reader that began before the commit keeps every checkpoint from folding it in.
    reader = sqlite3.connect(db, isolation_level=None)
    writer = sqlite3.connect(db)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM session_entries").fetchone()
        writer.execute("INSERT INTO session_entries VALUES ('in-the-wal', '{}', 2)")
        writer.commit()
        assert os.stat(f"{db}-wal").st_size > 0
        nightly = _backup_json(settled, out_dir)
        assert os.stat(db).st_mtime_ns == main_before.st_mtime_ns
    finally:
        reader.close()
        writer.close()
    assert _reused(nightly)[MAIN] is None
    restored = _restore(Path(nightly["archive"]), out_dir.parent / "restored")
    keys = {
        r[0]
        for r in table_rows(restored / "agents/main/agent/openclaw-agent.sqlite")["session_entries"]
    }
    assert "in-the-wal" in keys


def _commit_once_backup_started(db: Path) -> Callable[[ProgressEvent], None]:
    done: list[bool] = []

    def on_progress(event: ProgressEvent) -> None:
        # Discovery has listed the database and its earlier entry is known: commit now.
        if event.stage == "discover" and event.done == 1 and not done:
            _commit(
                db, "INSERT INTO session_entries VALUES ('mid-backup', '{}', 3)", checkpoint=False
            )
            done.append(True)

    return on_progress


def test_a_commit_landing_during_the_backup_is_in_the_nightly(
    settled: StateTree, out_dir: Path
) -> None:
    _backup_json(settled, out_dir)
    db = settled.agent_dbs["main"]
    result = create_backup(settled.root, output=out_dir, progress=_commit_once_backup_started(db))
    assert result.ok
    entry = next(d for d in result.manifest.databases if d.archive_path == MAIN)
    assert entry.reused_from is None
    restored = _restore(result.archive, out_dir.parent / "restored")
    keys = {
        r[0]
        for r in table_rows(restored / "agents/main/agent/openclaw-agent.sqlite")["session_entries"]
    }
    assert "mid-backup" in keys


def _earlier_and_nightly(state: StateTree, out_dir: Path, damage: Callable[[Path], None]) -> dict:
    first = _backup_json(state, out_dir)
    damage(Path(first["archive"]))
    return _backup_json(state, out_dir)


def _flip_inside_main_member(archive: Path) -> None:
    entry = next(d for d in manifest_of(archive)["databases"] if d["archive_path"] == MAIN)
    at = entry["frames"]["offset"] + entry["frames"]["length"] // 2
    with open(archive, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda a: a.unlink(), id="deleted"),
        pytest.param(lambda a: os.truncate(a, a.stat().st_size // 3), id="truncated"),
        pytest.param(_flip_inside_main_member, id="corrupted"),
    ],
)
def test_a_damaged_or_missing_earlier_archive_means_a_full_capture_and_a_good_archive(
    settled: StateTree, out_dir: Path, damage: Callable[[Path], None]
) -> None:
    nightly = _earlier_and_nightly(settled, out_dir, damage)
    assert _reused(nightly)[MAIN] is None
    assert nightly["status"] == "ok" and nightly["verified"] is True
    assert run_verify(Path(nightly["archive"]), "--no-record").code == 0


def test_a_flipped_member_of_the_earlier_archive_is_named_in_a_warning(
    settled: StateTree, out_dir: Path
) -> None:
    nightly = _earlier_and_nightly(settled, out_dir, _flip_inside_main_member)
    assert any(MAIN in w and "captured in full" in w for w in nightly["warnings"])


def test_nothing_is_reused_from_an_encrypted_archive(
    settled: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    made = run_cli("key", "new", tmp_path / "id.txt")
    assert made.returncode == 0, made.stderr
    _backup_json(settled, out_dir, "--encrypt-to", made.stdout.strip())
    nightly = _backup_json(settled, out_dir)
    assert set(_reused(nightly).values()) == {None}


def test_a_plain_nightly_after_an_encrypted_backup_copies_from_the_plain_one_before(
    settled: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    made = run_cli("key", "new", tmp_path / "id.txt")
    assert made.returncode == 0, made.stderr
    plain = _backup_json(settled, out_dir)
    _backup_json(settled, out_dir, "--encrypt-to", made.stdout.strip())
    nightly = _backup_json(settled, out_dir)
    assert _reused(nightly)[MAIN] == plain["backup_id"]


def test_an_encrypted_nightly_copies_nothing(
    settled: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    made = run_cli("key", "new", tmp_path / "id.txt")
    assert made.returncode == 0, made.stderr
    _backup_json(settled, out_dir)
    nightly = _backup_json(settled, out_dir, "--encrypt-to", made.stdout.strip())
    assert set(_reused(nightly).values()) == {None}


def _restore(archive: Path, target: Path) -> Path:
    proc = run_cli("restore", archive, "--target", target)
    assert proc.returncode == 0, proc.stderr
    return target


def _session_keys(db: Path) -> set[str]:
    return {row[0] for row in table_rows(db)["session_entries"]}


@pytest.fixture
def nightly_alone(settled: StateTree, out_dir: Path) -> Path:
    """A nightly archive that reused members, with the archive it reused them from deleted."""
    first = _backup_json(settled, out_dir)
    _change_rows(settled.agent_dbs["zoe"])
    nightly = _backup_json(settled, out_dir)
    assert _reused(nightly)[MAIN] == first["backup_id"]
    Path(first["archive"]).unlink()
    return Path(nightly["archive"])


def test_a_nightly_restores_alone_row_for_row(
    settled: StateTree, nightly_alone: Path, tmp_path: Path
) -> None:
    restored = _restore(nightly_alone, tmp_path / "restored")
    for db in (settled.agent_dbs["main"], settled.agent_dbs["zoe"]):
        rel = db.relative_to(settled.root)
        assert table_rows(restored / rel) == live_rows(db)


def test_a_nightly_verifies_alone_and_checks_its_reused_databases(nightly_alone: Path) -> None:
    verdict = run_verify(nightly_alone, "--no-record")
    assert verdict.code == 0, verdict.defects
    main = next(d for d in verdict.report["databases"] if d["archive_path"] == MAIN)
    assert main["integrity"] == "ok"


def test_stock_tar_zstd_and_sqlite3_read_a_nightly_alone(
    settled: StateTree, nightly_alone: Path, tmp_path: Path
) -> None:
    by_tar = tmp_path / "tar"
    extract_with_tar(nightly_alone, by_tar)
    by_zstd = tmp_path / "zstd"
    by_zstd.mkdir()
    subprocess.run(f"zstd -dcq '{nightly_alone}' | tar -x -C '{by_zstd}'", shell=True, check=True)
    for root in (by_tar, by_zstd):
        db = root / MAIN
        check = subprocess.run(
            ["sqlite3", db, "PRAGMA integrity_check"], capture_output=True, text=True, check=True
        )
        assert check.stdout.strip() == "ok"
        assert table_rows(db) == live_rows(settled.agent_dbs["main"])


def test_a_flipped_byte_in_a_copied_member_fails_verify(nightly_alone: Path) -> None:
    _flip_inside_main_member(nightly_alone)
    assert run_verify(nightly_alone, "--no-record").code == 1


def test_a_nightly_is_proven_by_its_read_back(settled: StateTree, out_dir: Path) -> None:
    _backup_json(settled, out_dir)
    nightly = _backup_json(settled, out_dir)
    assert _reused(nightly)[MAIN] is not None
    assert nightly["verified"] is True and nightly["status"] == "ok"
