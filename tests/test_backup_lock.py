"""One backup per state dir at a time; a dead holder never blocks the next run."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from fixtures import StateTree, build_state
from tests.conftest import REPO, only_archives, run_cli

HOLD = """
import sys, time
from pathlib import Path
from backupkit.state.lock import state_lock
with state_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
print("released", flush=True)
"""


def _holder(state: StateTree, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, os.fspath(state.root / "backupkit.lock"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.fspath(REPO)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_backup_exits_3_at_once_while_the_lock_is_held(
    state: StateTree, out_dir: Path
) -> None:
    holder = _holder(state, 60)
    try:
        proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir)
        assert proc.returncode == 3
        assert "another backup" in proc.stderr and f"pid {holder.pid}" in proc.stderr
        assert only_archives(out_dir) == []
    finally:
        holder.kill()
        holder.wait()


def test_wait_lets_the_second_backup_run_once_the_first_finishes(
    state: StateTree, out_dir: Path
) -> None:
    holder = _holder(state, 0.5)
    try:
        proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir, "--wait", "60")
        assert proc.returncode == 0, proc.stderr
        # It could only have run after the holder let go, which the holder says at once.
        assert holder.stdout is not None
        assert select.select([holder.stdout], [], [], 0)[0], "the backup ran under the lock"
        assert holder.stdout.readline().strip() == "released"
    finally:
        holder.kill()
        holder.wait()


def test_wait_that_runs_out_still_exits_3(state: StateTree, out_dir: Path) -> None:
    holder = _holder(state, 60)
    try:
        proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir, "--wait", "0.5")
        assert proc.returncode == 3
        assert "after waiting" in proc.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_does_not_block_the_next_backup(state: StateTree, out_dir: Path) -> None:
    holder = _holder(state, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr


def test_two_overlapping_backups_give_one_success_and_one_exit_3(tmp_path: Path) -> None:
    # At level 9 the first run holds the lock some 0.4 s after its staging dir appears; the
    # second, started at that moment, needs only to reach the lock.
    state = build_state(tmp_path / "openclaw", bytes_per_agent=8 << 20)
    out_dir = tmp_path / "backups"
    env = {**os.environ, "PYTHONPATH": os.fspath(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "backupkit",
        "--state-dir",
        os.fspath(state.root),
        "backup",
        "--output",
        os.fspath(out_dir),
        "--compression",
        "small",
    ]
    first = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        n.startswith(".backupkit-staging-") for n in only_archives(out_dir)
    ):
        time.sleep(0.01)
    second = run_cli(*cmd[3:])  # the second locker: this process, against the first one
    first.communicate(timeout=300)
    assert (first.returncode, second.returncode) == (0, 3), second.stderr
    assert len([n for n in only_archives(out_dir) if n.endswith(".tar.zst")]) == 1
