"""Kill anywhere: backup and verify killed with SIGKILL at seeded random moments."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from backupkit.verify.scan import VERIFY_PREFIX
from fixtures import build_state
from tests.conftest import REPO, all_databases, live_rows, run_cli

ENV = {**os.environ, "PYTHONPATH": os.fspath(REPO)}


def _kill_after(cmd: list[str], delay: float) -> None:
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _backup_trials(tmp_path: Path, seed: int, count: int) -> dict[str, int]:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=2 << 20, with_socket=False)
    out = tmp_path / "backups"
    rows = {db: live_rows(db) for db in all_databases(state)}
    for r in rows.values():
        r.pop("backup_runs", None)
    cmd = [
        sys.executable,
        "-m",
        "backupkit",
        "--state-dir",
        os.fspath(state.root),
        "backup",
        "--output",
        os.fspath(out),
    ]
    started = time.monotonic()
    subprocess.run(cmd, env=ENV, capture_output=True, check=True)
    full = time.monotonic() - started
    rng = random.Random(seed)
    seen = {"archives_checked": 0}
    checked: set[str] = set()
    for _ in range(count):
        _kill_after(cmd, rng.uniform(0, full * 1.1))
        for name in sorted(set(os.listdir(out)) - checked):
            if name.endswith(".tar.zst"):  # anything under a final name must verify
                seen["archives_checked"] += 1
                checked.add(name)
                check = run_cli("verify", out / name, "--no-record")
                assert check.returncode == 0, f"{name}: {check.stdout}"
        for db, before in rows.items():
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            conn.close()
            now = live_rows(db)
            now.pop("backup_runs", None)
            assert now == before, f"{db} lost or changed rows"
    after = run_cli("--state-dir", state.root, "backup", "--output", out)
    assert after.returncode == 0, after.stderr
    assert all(n.endswith(".tar.zst") for n in os.listdir(out)), os.listdir(out)
    return seen


def test_killed_backups_leave_only_good_archives_and_intact_databases(tmp_path: Path) -> None:
    seen = _backup_trials(tmp_path, seed=11, count=12)
    assert seen["archives_checked"] > 0


def _verify_dirs(pid: int) -> set[str]:
    # A verify's scratch dir is named for its pid, so other runs on the machine do not confuse us.
    mine = f"{VERIFY_PREFIX}{pid}-"
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(mine)}


def test_a_killed_verify_leaves_scratch_that_the_next_verify_removes(tmp_path: Path) -> None:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=8 << 20, with_socket=False)
    backup = run_cli(
        "--state-dir", state.root, "-q", "backup", "--output", tmp_path / "out", "--no-verify"
    )
    archive = Path(backup.stdout.strip())
    proc = subprocess.Popen(
        [sys.executable, "-m", "backupkit", "verify", os.fspath(archive), "--no-record"],
        env=ENV,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _verify_dirs(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _verify_dirs(proc.pid), "SIGKILL skips cleanup: the scratch dir must still be there"
    assert run_cli("verify", archive, "--no-record").returncode == 0
    assert not _verify_dirs(proc.pid)


@pytest.mark.slow
def test_killed_backups_many_seeded_trials(tmp_path: Path) -> None:
    seen = _backup_trials(tmp_path, seed=2026, count=60)
    print(f"backup kill trials: 60, archives under a final name verified: {seen}")
    assert seen["archives_checked"] > 0


def _verify_trials(tmp_path: Path, seed: int, count: int) -> int:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=2 << 20, with_socket=False)
    backup = run_cli("--state-dir", state.root, "-q", "backup", "--output", tmp_path / "out")
    archive = Path(backup.stdout.strip())
    rows_before = live_rows(state.global_db)
    cmd = [sys.executable, "-m", "backupkit", "verify", os.fspath(archive)]
    started = time.monotonic()
    subprocess.run(cmd, env=ENV, capture_output=True, check=True)
    full = time.monotonic() - started
    rng = random.Random(seed)
    killed_with_scratch = 0
    for _ in range(count):
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_with_scratch += bool(_verify_dirs(proc.pid))
        again = run_cli("verify", archive)
        assert again.returncode == 0, again.stdout
        assert not _verify_dirs(proc.pid), "the next verify must reclaim the scratch dir"
        conn = sqlite3.connect(f"file:{state.global_db}?mode=ro", uri=True)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()
    rows_after = live_rows(state.global_db)
    # A verify's only write is its ledger row: everything else in the state is unchanged.
    rows_before.pop("backup_runs")
    rows_after.pop("backup_runs")
    assert rows_after == rows_before
    return killed_with_scratch


def test_killed_verifies_leave_nothing_the_next_verify_does_not_reclaim(tmp_path: Path) -> None:
    _verify_trials(tmp_path, seed=5, count=12)


@pytest.mark.slow
def test_killed_verifies_many_seeded_trials(tmp_path: Path) -> None:
    hit = _verify_trials(tmp_path, seed=2026, count=60)
    print(f"verify kill trials: 60, killed while holding scratch: {hit}")
