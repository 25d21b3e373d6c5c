"""After any run, finished or killed and followed by another, the output dir holds only archives."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

from fixtures import build_state
from tests.conftest import only_archives, run_cli, start_cli


def _wait_for_staging(out: Path, proc: subprocess.Popen[str]) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        staging = [n for n in only_archives(out) if n.startswith(".backupkit-staging-")]
        if staging:
            return out / staging[0]
        assert proc.poll() is None, "backup ended before staging appeared"
        time.sleep(0.005)
    raise AssertionError("no staging directory appeared")


def test_killed_run_leftovers_are_removed_by_the_next_run(tmp_path: Path) -> None:
    tree = build_state(tmp_path / "openclaw", bytes_per_agent=16 << 20)
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
    staging = _wait_for_staging(out, proc)
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert staging.exists(), "SIGKILL leaves the staging dir: this is what the next run cleans"
    assert not [n for n in only_archives(out) if n.endswith(".tar.zst")]
    after = run_cli("--state-dir", tree.root, "backup", "--output", out)
    assert after.returncode == 0, after.stderr
    names = only_archives(out)
    assert len(names) == 1 and names[0].endswith(".tar.zst")


def test_staging_of_a_live_run_is_left_alone_by_a_concurrent_run(tmp_path: Path) -> None:
    # Two state dirs sharing one output dir: each run cleans only what nobody holds. The big
    # run's staging lives some 0.4 s at level 9; the quick run's clean-up comes within ms of it
    # appearing.
    big = build_state(tmp_path / "big", bytes_per_agent=8 << 20)
    small = build_state(tmp_path / "small", agents=1)
    out = tmp_path / "backups"
    proc = start_cli(
        "--state-dir",
        os.fspath(big.root),
        "backup",
        "--output",
        os.fspath(out),
        "--compression",
        "small",
    )
    _wait_for_staging(out, proc)
    quick = run_cli("--state-dir", small.root, "backup", "--output", out)
    assert quick.returncode == 0, quick.stderr
    _stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    names = only_archives(out)
    assert len(names) == 2 and all(n.endswith(".tar.zst") for n in names)
