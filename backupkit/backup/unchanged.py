"""Whether a live WAL database is provably unchanged since a recorded capture.

Every commit lands in the WAL or, once checkpointed, in the main file. So a database whose WAL
is empty and whose main file has the inode, size, mtime and ctime recorded at a capture holds
what that capture read (ctime cannot be set back from user space, so `os.utime` cannot fake it).

Both the recording and the proof look at the main file while `hold_main_file` holds a read
transaction that began on an empty WAL. Such a reader takes SQLite's read mark 0 (it reads the
main file only), and a checkpoint must lock that mark before it copies any frame into the main
file (`wal.c`, walCheckpoint): while it is held, SQLite writes nothing into the main file. A
commit meanwhile goes into the WAL, which then cannot be truncated or restarted below it (that
needs every reader off the WAL, and a checkpoint that cannot run): so a WAL still empty at the
end of the hold means no commit landed during it, and the snapshot taken meanwhile is the main
file as its facts describe it.

The facts are not trusted when the main file's mtime or ctime is within the file system's
timestamp granularity of the recorded capture moment (git's racy-index rule): a write in the
same clock tick, just after the hold ended, would leave them as they were. Such a database is
captured in full the next time, which records facts that are no longer racy.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..archive.manifest import SourceFacts
from ..sqlite.connect import connect_live
from ..state.discover import DatabaseSource

# Linux stamps files from a clock that advances once per scheduler tick (at most 10 ms, at
# HZ=100); twice that leaves a margin. A file system that keeps whole seconds only (FAT keeps
# two) gets the coarse bound, told apart by times with no fraction of a second at all.
FINE_GRANULARITY_NS = 20_000_000
COARSE_GRANULARITY_NS = 2_000_000_000
_SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class MainFile:
    """What the proof compares of a main file."""

    device: int
    inode: int
    size_bytes: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> MainFile:
        st = os.stat(path)
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def wal_empty(path: Path) -> bool:
    """Is the WAL file 0 bytes long, or absent? (No frames, folded in or not.)"""
    try:
        return os.stat(f"{path}-wal").st_size == 0
    except FileNotFoundError:
        return True


@contextlib.contextmanager
def hold_main_file(path: Path, conn: sqlite3.Connection | None = None) -> Iterator[MainFile | None]:
    """Hold a read transaction on `path` (a WAL database, just checkpointed), on `conn` (left
    open) or a connection of its own; yields its main file's state when the WAL is empty, so
    that nothing writes the main file until the block ends, else None. Never fails: a
    database that cannot be held yields None."""
    held: MainFile | None = None
    own = conn is None
    try:
        if conn is None:
            conn = connect_live(path, timeout=0)
    except sqlite3.Error:
        yield None
        return
    try:
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            # Checked after the read began: a WAL that is empty now was empty when it began.
            if wal_empty(path):
                held = MainFile.of(path)
        except (sqlite3.Error, OSError):
            held = None
        yield held
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if own:
            conn.close()


def still_held(path: Path, held: MainFile) -> bool:
    """Inside `hold_main_file`: did no commit land, and is the main file as it was held?"""
    try:
        return wal_empty(path) and MainFile.of(path) == held
    except OSError:
        return False


def facts(held: MainFile, source: DatabaseSource) -> SourceFacts:
    """The manifest's record of a held main file, stamped now (still inside the hold)."""
    return SourceFacts(
        device=held.device,
        inode=held.inode,
        size_bytes=held.size_bytes,
        mtime_ns=held.mtime_ns,
        ctime_ns=held.ctime_ns,
        captured_at_ns=time.time_ns(),
        discovered_role=source.role,
        discovered_agent_id=source.agent_id,
    )


def _granularity_ns(recorded: SourceFacts) -> int:
    whole = recorded.mtime_ns % _SECOND_NS == 0 and recorded.ctime_ns % _SECOND_NS == 0
    return COARSE_GRANULARITY_NS if whole else FINE_GRANULARITY_NS


def racy(recorded: SourceFacts) -> bool:
    """Could a write just after the recorded capture have left the main file's times as they
    were? Then the facts prove nothing."""
    newest = max(recorded.mtime_ns, recorded.ctime_ns)
    return newest >= recorded.captured_at_ns - _granularity_ns(recorded)


def proves_unchanged(held: MainFile, recorded: SourceFacts, source: DatabaseSource) -> bool:
    """Inside `hold_main_file`: is the database what the capture that recorded these facts
    read? Discovery must also see it as it did then (its role and agent id shape the entry)."""
    same_file = MainFile(
        recorded.device,
        recorded.inode,
        recorded.size_bytes,
        recorded.mtime_ns,
        recorded.ctime_ns,
    )
    seen_as = (recorded.discovered_role, recorded.discovered_agent_id)
    return held == same_file and not racy(recorded) and seen_as == (source.role, source.agent_id)
