"""Opening SQLite files without surprises.

SQLite creates files on open: a missing database when opened read-write, and `-wal`/`-shm`
sidecars even under `mode=ro` when a WAL database has none. Read-only commands must leave the
state dir exactly as they found it, so every open here says what it may create.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SQLITE_HEADER = b"SQLite format 3\x00"


def _uri(path: Path, **params: str) -> str:
    query = urllib.parse.urlencode(params)
    return f"file:{urllib.parse.quote(os.fspath(path))}?{query}"


def has_sqlite_header(path: Path) -> bool:
    """True for a file that starts like a SQLite database (an empty file counts: SQLite agrees)."""
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_HEADER))
    return head == SQLITE_HEADER or head == b""


def connect_live(path: Path, *, timeout: float) -> sqlite3.Connection:
    """A read-write connection to an existing database; `mode=rw` never creates a missing one."""
    return sqlite3.connect(
        _uri(path, mode="rw"),
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
        _uri(path, mode="ro", immutable="1"),
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


# Every connection that has a WAL database open holds a read lock on this byte of its -shm file
# (SQLite's unix VFS "DMS" slot: ((22 + 8) * 4) + 8).
_SHM_DMS_BYTE = 128


def _posix_locks() -> list[tuple[str, int, int, int]] | None:
    """(device "maj:min", inode, start, end) of every POSIX lock on the machine, from
    /proc/locks; None where the kernel does not offer it. Reading the list needs no descriptor
    on the file, which matters: closing one would drop SQLite's own locks in this process."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    locks = []
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) < 8 or parts[1] not in ("POSIX", "OFDLCK"):
            continue
        dev_ino = parts[5].split(":")
        if len(dev_ino) != 3:
            continue
        end = parts[7]
        locks.append(
            (
                f"{int(dev_ino[0], 16)}:{int(dev_ino[1], 16)}",
                int(dev_ino[2]),
                int(parts[6]),
                (1 << 63) if end == "EOF" else int(end),
            )
        )
    return locks


def wal_in_use(db: Path) -> bool | None:
    """True when some process (another one: the kernel lists ours too) has this WAL database
    open, judged by the lock every connection keeps on its -shm file; None if unknowable."""
    try:
        st = os.stat(f"{db}-shm")
    except FileNotFoundError:
        return False
    locks = _posix_locks()
    if locks is None:
        return None
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    return any(
        d == dev and ino == st.st_ino and start <= _SHM_DMS_BYTE <= end
        for d, ino, start, end in locks
    )


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
        conn = sqlite3.connect(_uri(path, mode="ro"), uri=True, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
        return
    with tempfile.TemporaryDirectory(prefix="backupkit-ro-") as tmp:
        copy = Path(tmp) / "db.sqlite"
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, Path(f"{copy}-wal"))
        conn = sqlite3.connect(_uri(copy), uri=True, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()


@dataclass(frozen=True)
class Identity:
    """What a database says about itself: `schema_meta` and `PRAGMA user_version`."""

    role: str | None
    schema_version: int | None
    agent_id: str | None
    user_version: int


def _as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def read_identity(conn: sqlite3.Connection) -> Identity:
    """Read `schema_meta` in either shape seen in the wild, tolerating its absence.

    The gateway writes one row with `role`, `schema_version`, `agent_id` columns; older files use
    `key`/`value` rows. A foreign file may have neither.
    """
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    cols = [row[1] for row in conn.execute("PRAGMA table_info(schema_meta)")]
    meta: dict[str, object] = {}
    if "role" in cols:
        cur = conn.execute("SELECT * FROM schema_meta LIMIT 1")
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        if row is not None:
            meta = dict(zip(names, row, strict=True))
    elif "key" in cols and "value" in cols:
        meta = {k: v for k, v in conn.execute("SELECT key, value FROM schema_meta")}
    role = meta.get("role")
    agent_id = meta.get("agent_id")
    return Identity(
        role=str(role) if role is not None else None,
        schema_version=_as_int(meta.get("schema_version")),
        agent_id=str(agent_id) if agent_id is not None else None,
        user_version=int(user_version),
    )


def integrity_check(conn: sqlite3.Connection) -> str:
    """Full `PRAGMA integrity_check`: "ok", or its first error line (one line, always)."""
    rows = conn.execute("PRAGMA integrity_check").fetchall()
    for row in rows:
        for line in str(row[0]).splitlines():
            # SQLite prefixes a result with the schema it is about: context, not the error.
            if line.strip() and not line.startswith("*** in database"):
                return line.strip()
    return "no result from integrity_check"


def error_text(err: BaseException) -> str:
    """An exception as one printable line (SQLite may quote raw bytes of a damaged page)."""
    if isinstance(err, UnicodeDecodeError):
        raw = err.object if isinstance(err.object, bytes) else b""
        return "database text is not UTF-8: " + raw.decode("utf-8", "backslashreplace")
    return " ".join(str(err).split()) or type(err).__name__
