"""Crafted hostile archives restore nothing anywhere: every one exits non-zero and leaves no
file outside (or, after the refusal, inside) the target."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures import hostile
from tests.conftest import REPO, run_cli

HOSTILE_DIR = REPO / "fixtures" / "hostile"
DOCUMENTED = hostile.read_readme((HOSTILE_DIR / "README.md").read_text())
BAD = sorted(name for name in DOCUMENTED if name != "good.tar.zst")


def _paths(root: Path) -> set[str]:
    # Paths only: a forgery caught after placement (only integrity_check sees it) removes the
    # target it created, which changes the parent's mtime but leaves nothing behind.
    return {os.fspath(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("name", BAD)
def test_hostile_archive_restores_nothing(name: str, tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    target = sandbox / "target"
    before = _paths(tmp_path)
    proc = run_cli("restore", HOSTILE_DIR / name, "--target", target)
    assert proc.returncode in (1, 2), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert _paths(tmp_path) == before, "something was left behind"
    assert not target.exists()
    assert not Path("/nonexistent").exists()


def test_the_control_archive_does_restore(tmp_path: Path) -> None:
    target = tmp_path / "target"
    proc = run_cli("restore", HOSTILE_DIR / "good.tar.zst", "--target", target)
    assert proc.returncode == 0, proc.stderr
    assert [p for p in target.rglob("*") if p.is_file()]
    assert not [p for p in target.rglob("*") if not os.fspath(p).startswith(os.fspath(target))]
