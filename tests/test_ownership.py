"""A restore run as root gives every restored entry the owner and group the archive records, so
`sudo backupkit restore` never hands the gateway's databases and credentials to root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures import build_state

from .conftest import run_cli

GATEWAY_UID = 65534  # nobody: any user that is not root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")


def _chown_tree(root: Path, uid: int) -> None:
    os.lchown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def _owners(root: Path) -> set[int]:
    owners = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            owners.add(os.lstat(os.path.join(dirpath, name)).st_uid)
    return owners


def test_root_restores_in_place_with_the_gateway_users_ownership(tmp_path: Path) -> None:
    state = build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=4096, with_socket=False)
    _chown_tree(state.root, GATEWAY_UID)
    out = tmp_path / "out"
    proc = run_cli("--state-dir", state.root, "backup", "--output", out)
    assert proc.returncode == 0, proc.stderr
    archive = Path(proc.stdout.strip())
    for db in state.agent_dbs.values():
        if state.root in db.parents:
            db.write_bytes(db.read_bytes())  # rewritten by root: now owned by root
            os.chown(db, 0, 0)
    proc = run_cli(
        "--state-dir", state.root, "restore", archive, "--in-place", "--force", "--output", out
    )
    assert proc.returncode == 0, proc.stderr
    assert _owners(state.root) - {0} == {GATEWAY_UID}
    assert 0 not in _owners(state.root / "agents"), "nothing restored is left to root"


def test_root_restores_to_a_target_with_the_recorded_ownership(tmp_path: Path) -> None:
    state = build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=4096, with_socket=False)
    _chown_tree(state.root, GATEWAY_UID)
    out = tmp_path / "out"
    proc = run_cli("--state-dir", state.root, "backup", "--output", out)
    assert proc.returncode == 0, proc.stderr
    target = tmp_path / "restored"
    assert run_cli("restore", Path(proc.stdout.strip()), "--target", target).returncode == 0
    assert _owners(target / "agents") == {GATEWAY_UID}
    assert _owners(target / "state") == {GATEWAY_UID}
