"""Credentials stay secret: file modes whatever the umask, and no credential bytes in output."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

from fixtures import StateTree, build_state
from tests.conftest import REPO, backup_ok, manifest_of, run_cli, umask


def _secrets(state: StateTree) -> list[bytes]:
    """The token values in every credential file (`sk-...` and long hex strings)."""
    found: list[bytes] = []
    for path in state.credential_files:
        found += re.findall(rb"sk-[\w-]+|[0-9a-f]{24,}", path.read_bytes())
    assert len(found) >= len(state.credential_files), "each credential should hold a token"
    return found


def test_no_credential_bytes_in_outputs_errors_or_the_manifest(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    secrets = _secrets(state)
    outputs: list[str] = []
    for args in (
        ("--state-dir", state.root, "-v", "backup", "--output", out_dir, "--json"),
        ("--state-dir", state.root, "backup", "--dry-run", "--json", "--output", out_dir),
        ("--state-dir", state.root, "backup", "--dry-run", "--output", out_dir),
    ):
        proc = run_cli(*args)
        outputs += [proc.stdout, proc.stderr]
    archive = next(p for p in out_dir.iterdir() if p.name.endswith(".tar.zst"))
    for args in (
        ("show", archive),
        ("show", archive, "--json"),
        ("verify", archive, "--json"),
        ("restore", archive, "--target", tmp_path / "r", "--json"),
        ("--state-dir", state.root, "list", "--output", out_dir, "--json"),
    ):
        proc = run_cli(*args)
        outputs += [proc.stdout, proc.stderr]
    manifest = repr(manifest_of(archive))
    for secret in secrets:
        for text in [*outputs, manifest]:
            assert secret.decode() not in text


def test_archive_0600_and_staging_0700_under_a_permissive_umask(tmp_path: Path) -> None:
    # Big enough that the run lasts long enough for its staging dir to be seen.
    state = build_state(tmp_path / "openclaw", bytes_per_agent=8 << 20)
    out_dir = tmp_path / "backups"
    env = {**os.environ, "PYTHONPATH": os.fspath(REPO)}
    proc = subprocess.Popen(
        [
            "sh",
            "-c",
            'umask 000 && exec "$0" -m backupkit --state-dir "$1" backup --output "$2"',
            sys.executable,
            os.fspath(state.root),
            os.fspath(out_dir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    staging_modes = set()
    while proc.poll() is None:
        if out_dir.exists():
            for p in out_dir.iterdir():
                if p.name.startswith(".backupkit-staging-"):
                    with contextlib.suppress(FileNotFoundError):
                        staging_modes.add(stat.S_IMODE(p.stat().st_mode))
        time.sleep(0.001)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert stat.S_IMODE(Path(stdout.strip()).stat().st_mode) == 0o600
    assert stat.S_IMODE(out_dir.stat().st_mode) == 0o700
    assert staging_modes == {0o700}


def test_restored_credentials_keep_0600_under_a_permissive_umask(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    target = tmp_path / "restored"
    with umask(0o000):
        proc = run_cli("restore", archive, "--target", target)
    assert proc.returncode == 0, proc.stderr
    for cred in state.credential_files:
        assert stat.S_IMODE((target / cred.relative_to(state.root)).stat().st_mode) == 0o600
