"""File names are bytes: a name that is not valid UTF-8 round-trips byte for byte through the
archive, the manifest (as a JSON `\\udcXX` escape), a restore and stock tar."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fixtures import StateTree, build_state

from .conftest import json_out, manifest_of, run_cli

LATIN1_NAME = b"caf\xe9 notes.md"


def _state_with_bytes_name(tmp_path: Path) -> tuple[StateTree, Path]:
    state = build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=4096, with_socket=False)
    path = os.fsencode(state.root / "workspace") + b"/" + LATIN1_NAME
    with open(path, "wb") as fh:
        fh.write(b"written on an old Samba share\n")
    return state, Path(os.fsdecode(path))


def test_a_name_that_is_not_utf8_is_backed_up_and_listed_in_the_manifest(tmp_path: Path) -> None:
    state, path = _state_with_bytes_name(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("--state-dir", state.root, "backup", "--output", out, "--json")
    assert proc.returncode == 0, proc.stderr
    archive = Path(json_out(proc)["archive"])
    names = {os.fsencode(f["source_path"]) for f in manifest_of(archive)["files"]}
    assert os.fsencode(path) in names
    dry = run_cli("--state-dir", state.root, "backup", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr


def test_a_name_that_is_not_utf8_comes_back_through_restore_and_stock_tar(tmp_path: Path) -> None:
    state, path = _state_with_bytes_name(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("--state-dir", state.root, "backup", "--output", out)
    assert proc.returncode == 0, proc.stderr
    archive = Path(proc.stdout.strip())
    assert run_cli("verify", archive, "--no-record").returncode == 0
    restored = tmp_path / "restored"
    assert run_cli("restore", archive, "--target", restored).returncode == 0
    by_tar = tmp_path / "tar"
    by_tar.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", archive, "-C", by_tar], check=True, capture_output=True)
    for root in (restored, by_tar / "state"):
        names = os.listdir(os.fsencode(root / "workspace"))
        assert LATIN1_NAME in names
        with open(os.fsencode(root / "workspace") + b"/" + LATIN1_NAME, "rb") as fh:
            assert fh.read() == path.read_bytes()
