"""Starting the programs the bench measures or asks: a clean environment, backupkit's CLI."""

from __future__ import annotations

import os
import subprocess
import sys


def child_env() -> dict[str, str]:
    # The bench names every path itself: an operator's OpenClaw or backupkit settings in the
    # environment must not redirect the contenders to a real state dir.
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENCLAW_", "BACKUPKIT_")) and k != "PYTHONPROFILEIMPORTTIME"
    }


def backupkit_cmd(*args: str) -> list[str]:
    """backupkit's public command line, run by the venv's Python from the checkout."""
    return [sys.executable, "-m", "backupkit", *args]


def tool_version(cmd: list[str]) -> str | None:
    """The first line a tool prints for its version, or None if it is missing."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None
