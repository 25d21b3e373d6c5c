"""Opening SQLite files without surprises: the one URI builder and every opener.

SQLite creates files on open: a missing database when opened read-write, and `-wal`/`-shm`
sidecars even under `mode=ro` when a WAL database has none. Read-only commands must leave the
state dir exactly as they found it, so every open here says what it may create. Every path
reaches SQLite through `sqlite_uri`, which percent-encodes it: a `#`, `?` or `%` in a path is
part of the name, never the start of a fragment, a query or an escape.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from .live import wal_in_use

SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_uri(path: Path, **params: str) -> str:
    """A `file:` URI for `path` with `params`; every character of the path stays in the path."""
    if "\x00" in os.fspath(path):
        raise ValueError(f"a path with a NUL byte cannot name a database: {os.fspath(path)!r}")
    query = urllib.parse.urlencode(params)
    return f"file:{urllib.parse.quote(os.fspath(path), safe='/')}?{query}"


def has_sqlite_header(path: Path) -> bool:
    """True for a file that starts like a SQLite database (an empty file counts: SQLite agrees)."""
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_HEADER))
    return head == SQLITE_HEADER or head == b""


def journal_kind(path: Path) -> Literal["wal", "rollback"] | None:
    """ "wal" or "rollback" for a database, from the file format versions in its header (bytes
    18 and 19 are 2 in WAL mode), or None for a file that is no database; read without a lock,
    so a busy writer never makes this wait or fail."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if head[: len(SQLITE_HEADER)] != SQLITE_HEADER and head != b"":
        return None
    return "wal" if head[18:20] == b"\x02\x02" else "rollback"


def connect_live(path: Path, *, timeout: float) -> sqlite3.Connection:
    """A read-write connection to an existing database; `mode=rw` never creates a missing one."""
    return sqlite3.connect(
        sqlite_uri(path, mode="rw"),
        uri=True,
        timeout=timeout,
        isolation_level=None,
        check_same_thread=False,
    )


# Reading through mmap makes a full integrity_check about a third cheaper in CPU (measured by
# scripts/bench --breakdown). Mapped pages count in the process's resident set, though: mapping
# whole databases took peak RSS from 62 MB to 163 MB on a 2 GiB state, against a 150 MB budget.
# So only the first 32 MiB of each file are mapped: small databases (most agents) get all of the
# gain, large ones part of it, and RSS stays bounded by 32 MiB per checking thread.
# Only files nobody else writes are mapped: a file truncated under a mapping would fault, which
# is why live databases are never opened this way.
SNAPSHOT_MMAP_BYTES = 32 << 20


def connect_snapshot(path: Path, *, mmap: bool = False) -> sqlite3.Connection:
    """Open a private, unchanging snapshot file read-only, with no locking and no sidecars.
    `mmap=True` only for a file this process owns (a staging snapshot or a verify copy)."""
    conn = sqlite3.connect(
        sqlite_uri(path, mode="ro", immutable="1"),
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    if mmap:
        conn.execute(f"PRAGMA mmap_size={SNAPSHOT_MMAP_BYTES}")
    return conn


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def open_readonly(path: Path) -> Iterator[sqlite3.Connection]:
    """Read a live database, seeing committed WAL rows, without creating or changing any file.

    - no WAL content: the main file is the whole database, so `immutable=1` reads it lock-free;
    - WAL in use by a running process: read it as one more reader (`mode=ro`), which creates
      nothing; its -shm is the live process's shared memory, which that process changes anyway;
    - WAL left behind with no process on it: SQLite would create or update `-shm`, so read a
      private copy of the database and its WAL instead.
    """
    if not path.is_file():
        raise FileNotFoundError(2, "no such database", os.fspath(path))
    wal = Path(f"{path}-wal")
    if not _nonempty(wal):
        conn = connect_snapshot(path)
        try:
            yield conn
        finally:
            conn.close()
        return
    if wal_in_use(path):
        conn = sqlite3.connect(sqlite_uri(path, mode="ro"), uri=True, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
        return
    with tempfile.TemporaryDirectory(prefix="backupkit-ro-") as tmp:
        copy = Path(tmp) / "db.sqlite"
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, Path(f"{copy}-wal"))
        conn = sqlite3.connect(sqlite_uri(copy), uri=True, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
