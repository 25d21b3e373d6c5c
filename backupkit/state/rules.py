"""What discovery keeps and what it leaves out, and why: the rules by name and by content.

Only real sidecars of a database, sockets and other special files, and the gateway's and
backupkit's own lock, pid and restore files are left out; everything else in the state dir is
data (docs/backup.md lists the reasons).
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from ..sqlite.connect import has_sqlite_header
from .layout import JOURNAL_NAME, LOCK_NAME, RESTORE_TEMP_PREFIX

SIDECAR_REASONS = {"-wal": "wal-sidecar", "-shm": "wal-sidecar", "-journal": "journal-sidecar"}
LEGACY_NAMES = {"sessions.json"}
LEGACY_SUFFIXES = (".jsonl",)


def is_workspace(rel: PurePosixPath) -> bool:
    parts = rel.parts
    top = parts[0]
    if top == "workspace" or top.startswith("workspace-") or top == "workspaces":
        return True
    return len(parts) >= 3 and parts[0] == "agents" and parts[2] == "workspace"


def excluded(rel: PurePosixPath, patterns: Iterable[str]) -> bool:
    text = rel.as_posix()
    return any(fnmatch.fnmatchcase(text, p) or fnmatch.fnmatchcase(rel.name, p) for p in patterns)


def looks_like_database(path: Path, size: int) -> bool:
    """By content, not by name: the 16-byte SQLite header (a database is at least one 512-byte
    page, so a smaller file is none)."""
    if size < 512:
        return False
    try:
        return has_sqlite_header(path)
    except OSError:
        return False  # unreadable: archived as a file, and the archive step says why it failed


def sidecar_reason(path: Path, rel: PurePosixPath, in_state: bool) -> str | None:
    """Why a file is left out as a sidecar or a runtime file of the gateway, or None.

    Only real sidecars go: `X-wal`, `X-shm`, `X-journal` beside a database `X`. Lock and pid
    files go only where the gateway keeps its own (the top of the state dir, `state/`, and the
    legacy `*.jsonl.lock` session locks); a workspace's `Cargo.lock` or `yarn.lock` is user data.
    """
    name = rel.name
    for suffix, reason in SIDECAR_REASONS.items():
        if name.endswith(suffix):
            base = Path(os.fspath(path)[: -len(suffix)])
            try:
                st = base.stat()
            except OSError:
                return None
            if stat.S_ISREG(st.st_mode) and (
                base.name.endswith(".sqlite") or looks_like_database(base, st.st_size)
            ):
                return reason
            return None
    gateway_place = in_state and (len(rel.parts) == 1 or rel.parts[0] == "state")
    if name.endswith(".lock") and (gateway_place or (in_state and name.endswith(".jsonl.lock"))):
        return "lock-file"
    if name.endswith(".pid") and gateway_place:
        return "pid-file"
    return None


def special_reason(mode: int) -> str | None:
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return None


def is_database(path: Path) -> bool:
    try:
        return has_sqlite_header(path)
    except OSError:
        return False


def own_state_file(rel: PurePosixPath, in_state: bool) -> bool:
    """backupkit's lock, journal and restore temporaries: skipped below with reasons of their
    own."""
    if not in_state:
        return False
    return (
        rel == PurePosixPath(LOCK_NAME)
        or (len(rel.parts) == 1 and rel.name.startswith(JOURNAL_NAME))
        or rel.name.startswith(RESTORE_TEMP_PREFIX)
    )
