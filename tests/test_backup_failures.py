"""Bad input and a hostile machine: a clear line, the documented exit code, nothing lost."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from fixtures import StateTree, build_state
from tests.conftest import (
    NOBODY,
    all_databases,
    can_mount_tmpfs,
    can_run_as_nobody,
    live_rows,
    manifest_of,
    only_archives,
    run_cli,
    run_cli_as_nobody,
    run_cli_process,
    start_cli,
    tree_snapshot,
)


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def _ledger(db: Path) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, status, manifest_json FROM backup_runs").fetchall()
    finally:
        conn.close()


def test_missing_state_dir_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    proc = run_cli("--state-dir", missing, "backup")
    assert proc.returncode == 2
    assert "does not exist" in _one_line_error(proc)
    assert sorted(os.listdir(tmp_path)) == []


def test_output_inside_the_state_dir_exits_2(state: StateTree) -> None:
    before = tree_snapshot(state.root)
    proc = run_cli("--state-dir", state.root, "backup", "--output", state.root / "backups")
    assert proc.returncode == 2
    assert "inside the state dir" in _one_line_error(proc)
    assert tree_snapshot(state.root) == before


def test_unknown_option_is_one_line_and_exit_2(state: StateTree) -> None:
    # As a real `python -m backupkit`: the one line is all the interpreter prints, start included.
    proc = run_cli_process("--state-dir", state.root, "backup", "--frobnicate")
    assert proc.returncode == 2
    assert "--frobnicate" in _one_line_error(proc)


def _break_database(db: Path, payload: bytes) -> None:
    for side in (f"{db}-wal", f"{db}-shm"):
        if os.path.exists(side):
            os.remove(side)
    db.write_bytes(payload)


def test_agent_file_that_is_not_a_database_fails_the_run_but_keeps_everything_else(
    state: StateTree, out_dir: Path
) -> None:
    bad = state.agent_dbs["zoe"]
    _break_database(bad, b"this is not a database at all\n" * 100)
    proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir)
    assert proc.returncode == 1
    line = _one_line_error(proc)
    assert os.fspath(bad) in line and "fails its check" in line
    archive = Path(proc.stdout.strip())
    manifest = manifest_of(archive)
    entries = {d["source_path"]: d for d in manifest["databases"]}
    assert entries[os.fspath(bad)]["integrity"] == "file is not a database"
    assert entries[os.fspath(bad)]["captured_as"] == "raw-copy"
    others = [d for p, d in entries.items() if p != os.fspath(bad)]
    assert others and all(d["integrity"] == "ok" for d in others)
    assert len(manifest["files"]) > 10
    rows = {r[0]: r[1] for r in _ledger(state.global_db)}
    assert rows[manifest["backup_id"]] == "failed"


def test_a_corrupt_database_page_fails_the_run_with_exit_1(state: StateTree, out_dir: Path) -> None:
    bad = state.agent_dbs["main"]
    conn = sqlite3.connect(bad)  # fold the WAL in so the damage below lands in live pages
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(bad.read_bytes())
    for page in range(2, len(data) // page_size, 3):  # every third page's header: b-tree garbage
        data[page * page_size : page * page_size + 16] = b"\xff" * 16
    bad.write_bytes(bytes(data))
    proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir)
    assert proc.returncode == 1, proc.stderr
    assert os.fspath(bad) in _one_line_error(proc)
    entry = next(
        d
        for d in manifest_of(Path(proc.stdout.strip()))["databases"]
        if d["source_path"] == os.fspath(bad)
    )
    assert entry["integrity"] != "ok"
    conn = sqlite3.connect(f"file:{state.global_db}?mode=ro", uri=True)
    statuses = [r[0] for r in conn.execute("SELECT status FROM backup_runs ORDER BY rowid")]
    conn.close()
    assert statuses[-2:] == ["failed", "read-back-ok"]


def test_missing_global_database_is_never_created_and_the_run_says_so(
    state: StateTree, out_dir: Path
) -> None:
    _break_database(state.global_db, b"")
    os.remove(state.global_db)
    proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert "not recorded" in proc.stderr
    assert not state.global_db.exists()
    assert not Path(f"{state.global_db}-wal").exists()


def _state_with_big_file(root: Path) -> StateTree:
    tree = build_state(root, agents=1, bytes_per_agent=16 * 1024)
    (tree.root / "workspace" / "big.bin").write_bytes(os.urandom(3 << 20))
    return tree


def test_file_size_limit_while_writing_the_archive_exits_4_leaving_nothing(tmp_path: Path) -> None:
    tree = _state_with_big_file(tmp_path / "openclaw")
    out = tmp_path / "backups"
    before = _source_state(tree)

    def limit() -> None:  # the kernel refuses writes past 1 MiB: EFBIG, like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    # An rlimit is per process: the run gets a process of its own.
    proc = run_cli_process("--state-dir", tree.root, "backup", "--output", out, preexec_fn=limit)
    assert proc.returncode == 4, proc.stderr
    assert "disk full" in _one_line_error(proc)
    assert only_archives(out) == []
    assert _source_state(tree) == before
    assert [r[1] for r in _ledger(tree.global_db)] == ["failed"]


def _source_state(tree: StateTree) -> tuple[dict, dict]:
    """Every database's rows and every other file's bytes: what "source untouched" means (the
    checkpoint may legitimately move WAL pages into the main file, and the failed run is
    recorded in backup_runs)."""
    rows = {db: live_rows(db) for db in all_databases(tree)}
    rows[tree.global_db].pop("backup_runs")
    files = {
        p: p.read_bytes()
        for p in tree.root.rglob("*")
        if p.is_file()
        and not p.is_symlink()
        and ".sqlite" not in p.name
        and p.name != "backupkit.lock"
    }
    return rows, files


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root and tmpfs mounts")
def test_disk_full_on_a_small_output_filesystem_exits_4_leaving_nothing(tmp_path: Path) -> None:
    tree = _state_with_big_file(tmp_path / "openclaw")
    out = tmp_path / "small"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", os.fspath(out)], check=True)
    try:
        proc = run_cli("--state-dir", tree.root, "backup", "--output", out)
        assert proc.returncode == 4, proc.stderr
        assert "disk full" in _one_line_error(proc)
        assert only_archives(out) == []
        rows = _ledger(tree.global_db)
        assert [r[1] for r in rows] == ["failed"]
    finally:
        subprocess.run(["umount", os.fspath(out)], check=True)


def test_interrupt_mid_run_removes_staging_and_leaves_no_archive(tmp_path: Path) -> None:
    # Big enough, at level 9, that the run is still capturing when the signal lands: a backup of
    # this tree takes about a second, and the signal comes 0.05 s after the staging dir appears.
    tree = build_state(tmp_path / "openclaw", agents=4, bytes_per_agent=16 << 20)
    out = tmp_path / "backups"
    proc = start_cli(
        "--state-dir",
        os.fspath(tree.root),
        "backup",
        "--output",
        os.fspath(out),
        "--compression",
        "small",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        n.startswith(".backupkit-staging-") for n in only_archives(out)
    ):
        time.sleep(0.01)
    time.sleep(0.05)
    assert proc.poll() is None, "the backup finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 4, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert only_archives(out) == []
    conn = sqlite3.connect(f"file:{tree.global_db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


@pytest.mark.skipif(
    not can_run_as_nobody(), reason="needs root, setpriv and a checkout nobody can read"
)
def test_unreadable_state_exits_4_with_permission_denied(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="backupkit-perm-"))
    try:
        os.chmod(base, 0o755)
        tree = build_state(base / "openclaw", with_socket=False)
        out = base / "backups"
        out.mkdir()
        os.chown(out, NOBODY, NOBODY)
        proc = run_cli_as_nobody("--state-dir", tree.root, "backup", "--output", out)
        assert proc.returncode == 4, proc.stderr
        assert "permission denied" in _one_line_error(proc)
        assert only_archives(out) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
