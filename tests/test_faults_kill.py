"""Kill anywhere: backup and verify killed with SIGKILL at seeded random moments.

The seeded trials kill children forked from the test process (`ForkedCli`): real processes,
whose every moment is backupkit's own work rather than an interpreter starting. The single
targeted verify kill runs a real `python -m backupkit`."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backupkit.verify.scan import VERIFY_PREFIX
from fixtures import build_state
from tests.conftest import ForkedCli, all_databases, cli_env, live_rows, run_cli, seeded_spread


def _kill_after(args: list[str], delay: float) -> None:
    proc = ForkedCli(*args)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _backup_trials(tmp_path: Path, seed: int, count: int) -> dict[str, int]:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=2 << 20, with_socket=False)
    out = tmp_path / "backups"
    rows = {db: live_rows(db) for db in all_databases(state)}
    for r in rows.values():
        r.pop("backup_runs", None)
    args = ["--state-dir", os.fspath(state.root), "backup", "--output", os.fspath(out)]
    started = time.monotonic()
    assert ForkedCli(*args).wait() == 0
    full = time.monotonic() - started
    rng = random.Random(seed)
    seen = {"archives_checked": 0}
    # The timing run's archive is not the trials' doing: only what they leave counts.
    checked = set(os.listdir(out))
    for delay in seeded_spread(rng, count, full * 1.1):
        _kill_after(args, delay)
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


def _verify_dirs(pid: int, tmp: Path) -> set[str]:
    # A verify's scratch dir is named for its pid, so other runs on the machine do not confuse us.
    mine = f"{VERIFY_PREFIX}{pid}-"
    return {n for n in os.listdir(tmp) if n.startswith(mine)}


def _private_tmp(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A temp dir of the test's own, and the environment that points verify at it: a verify
    elsewhere on the machine cannot reclaim a killed trial's scratch before the test looks."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return tmp, {"TMPDIR": os.fspath(tmp)}


def test_a_killed_verify_leaves_scratch_that_the_next_verify_removes(tmp_path: Path) -> None:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=8 << 20, with_socket=False)
    backup = run_cli(
        "--state-dir", state.root, "-q", "backup", "--output", tmp_path / "out", "--no-verify"
    )
    archive = Path(backup.stdout.strip())
    tmp, tmp_env = _private_tmp(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "backupkit", "verify", os.fspath(archive), "--no-record"],
        env=cli_env(tmp_env),
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not _verify_dirs(proc.pid, tmp) and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _verify_dirs(proc.pid, tmp), "SIGKILL skips cleanup: the scratch dir must still be there"
    assert run_cli("verify", archive, "--no-record", env=tmp_env).returncode == 0
    assert not _verify_dirs(proc.pid, tmp)


@pytest.mark.slow
def test_killed_backups_many_seeded_trials(tmp_path: Path) -> None:
    seen = _backup_trials(tmp_path, seed=2026, count=60)
    print(f"backup kill trials: 60, archives under a final name verified: {seen}")
    assert seen["archives_checked"] > 0


def _verify_trials(tmp_path: Path, seed: int, count: int) -> dict[str, int]:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=2 << 20, with_socket=False)
    backup = run_cli("--state-dir", state.root, "-q", "backup", "--output", tmp_path / "out")
    archive = Path(backup.stdout.strip())
    tmp, tmp_env = _private_tmp(tmp_path)
    rows_before = live_rows(state.global_db)
    args = ["verify", os.fspath(archive)]

    # One unhurried run to time it: overall, and how long its scratch dir lives (a part of the
    # run, between the archive's opening and the ledger write).
    started = time.monotonic()
    probe = ForkedCli(*args, env=tmp_env)
    scratch_seen: list[float] = []
    while probe.poll() is None:
        if _verify_dirs(probe.pid, tmp):
            scratch_seen.append(time.monotonic())
        time.sleep(0.0005)
    assert probe.returncode == 0
    full = time.monotonic() - started
    assert scratch_seen, "the timing run's scratch dir was never seen"
    window = scratch_seen[-1] - scratch_seen[0]

    rng = random.Random(seed)
    anywhere = seeded_spread(rng, (count + 1) // 2, full)
    aimed = seeded_spread(rng, count // 2, window * 1.2)
    seen = {"killed_with_scratch": 0, "reclaimed": 0}
    for trial in range(count):
        proc = ForkedCli(*args, env=tmp_env)
        if trial % 2 == 0:  # anywhere in the run
            time.sleep(anywhere[trial // 2])
        else:  # from the scratch dir's appearance to a little past its removal
            deadline = time.monotonic() + 30
            while (
                not _verify_dirs(proc.pid, tmp)
                and proc.poll() is None
                and time.monotonic() < deadline
            ):
                time.sleep(0.0005)
            time.sleep(aimed[trial // 2])
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = bool(_verify_dirs(proc.pid, tmp))
        seen["killed_with_scratch"] += left
        again = run_cli("verify", archive, env=tmp_env)
        assert again.returncode == 0, again.stdout
        assert not _verify_dirs(proc.pid, tmp), "the next verify must reclaim the scratch dir"
        seen["reclaimed"] += left
        conn = sqlite3.connect(f"file:{state.global_db}?mode=ro", uri=True)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()
    rows_after = live_rows(state.global_db)
    # A verify's only write is its ledger row: everything else in the state is unchanged.
    rows_before.pop("backup_runs")
    rows_after.pop("backup_runs")
    assert rows_after == rows_before
    return seen


def _assert_scratch_was_hit_and_reclaimed(seen: dict[str, int]) -> None:
    # Trials that never killed a verify while it held scratch would prove nothing about cleanup.
    assert seen["killed_with_scratch"] > 0, "no trial killed a verify while its scratch existed"
    assert seen["reclaimed"] == seen["killed_with_scratch"]


def test_killed_verifies_leave_nothing_the_next_verify_does_not_reclaim(tmp_path: Path) -> None:
    _assert_scratch_was_hit_and_reclaimed(_verify_trials(tmp_path, seed=5, count=12))


@pytest.mark.slow
def test_killed_verifies_many_seeded_trials(tmp_path: Path) -> None:
    seen = _verify_trials(tmp_path, seed=2026, count=60)
    print(f"verify kill trials: 60, killed while holding scratch: {seen['killed_with_scratch']}")
    _assert_scratch_was_hit_and_reclaimed(seen)
