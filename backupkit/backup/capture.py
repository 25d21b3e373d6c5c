"""Capture one live database as a consistent snapshot file.

Checkpoint first (so the WAL the gateway leaves behind stays small), then `VACUUM INTO` a private
staging file: SQLite reads through the WAL inside one read transaction, so committed rows that
live only in `-wal` are in the snapshot and the gateway's writers are never blocked by it. The
snapshot then gets the one database check (sqlite/check.py), whose findings about the source go
into the manifest.

A WAL database is held still (unchanged.py) from just after its checkpoint to the end of its
snapshot, so the main file's facts can be recorded for a later backup. `prove_unchanged` asks,
given the entry of an earlier capture, whether those facts prove the database unchanged: then
it is not snapshotted at all (`Unchanged`), and its earlier member is copied instead
(reuse.py).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from ..archive.manifest import CapturedAs, Checkpoint, DatabaseEntry, JournalMode, Role, SourceFacts
from ..errors import from_os_error, from_sqlite_error, is_database_defect
from ..sqlite.check import NOT_A_DATABASE, check_database, error_text, source_findings
from ..sqlite.connect import connect_live, journal_kind
from ..state.discover import DatabaseSource
from .unchanged import facts, hold_main_file, proves_unchanged, still_held, wal_empty

# A TRUNCATE checkpoint holds the gateway's writers back while it waits for readers; give up on it
# quickly and keep the PASSIVE result instead of stalling the gateway.
TRUNCATE_WAIT_MS = 100
# VACUUM INTO only reads; on a rollback-journal database it can still meet a writer's lock.
READ_WAIT_S = 30.0


@dataclass
class CapturedDatabase:
    source: DatabaseSource
    file: Path
    captured_as: CapturedAs
    role: Role
    agent_id: str | None
    schema_version: int | None
    user_version: int | None
    integrity: str
    checkpoint: Checkpoint | None
    journal_mode: JournalMode | None
    size_bytes: int
    mode: int
    mtime: float
    findings: list[str]
    owner: tuple[int, int] = (0, 0)  # uid and gid of the live file
    source_facts: SourceFacts | None = None  # the main file as held during the snapshot

    @property
    def damaged(self) -> bool:
        """A database that fails its check at the source: the run must report it. So is a
        gateway database (global or agent) that is no database at all; any other file that is
        only named like a database is kept as it is, and is a finding."""
        if self.integrity == NOT_A_DATABASE:
            return self.role in ("global", "agent")
        return self.integrity != "ok"


@dataclass
class Unchanged:
    """A database proven unchanged since the capture of `earlier`: nothing was snapshotted."""

    source: DatabaseSource
    earlier: DatabaseEntry


def _checkpoint(conn: sqlite3.Connection) -> Checkpoint:
    """PASSIVE, then a TRUNCATE that gives up quickly; WAL databases only (the caller checks).
    A checkpoint that meets a busy writer is recorded as such, never a failed capture."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.OperationalError:
        return Checkpoint(mode="none", busy=True, log_frames=0, checkpointed_frames=0)
    if log < 0:
        return Checkpoint(mode="none", busy=False, log_frames=0, checkpointed_frames=0)
    passive = Checkpoint(mode="passive", busy=bool(busy), log_frames=log, checkpointed_frames=done)
    conn.execute(f"PRAGMA busy_timeout={TRUNCATE_WAIT_MS}")
    try:
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError:
        return passive
    if busy:
        return passive
    return Checkpoint(mode="truncate", busy=False, log_frames=log, checkpointed_frames=done)


def _raw_capture(source: DatabaseSource, st: os.stat_result, why: str) -> CapturedDatabase:
    """SQLite cannot read it: keep its bytes as they are, and say why it is not proven."""
    finding = (
        "named like a database, but SQLite cannot read it: kept byte for byte"
        if why == NOT_A_DATABASE
        else f"SQLite cannot read it ({why}): kept byte for byte, without its WAL"
    )
    return CapturedDatabase(
        source=source,
        file=source.path,
        captured_as="raw-copy",
        role=source.role,
        agent_id=source.agent_id,
        schema_version=None,
        user_version=None,
        integrity=why,
        checkpoint=None,
        journal_mode=None,
        size_bytes=st.st_size,
        mode=stat.S_IMODE(st.st_mode),
        mtime=st.st_mtime,
        findings=[finding],
        owner=(st.st_uid, st.st_gid),
    )


def prove_unchanged(source: DatabaseSource, earlier: DatabaseEntry) -> Unchanged | None:
    """`Unchanged` when the live database is proven to be what the capture of `earlier` read
    (unchanged.py); None when it is not, or cannot be: then it is captured. Writes nothing."""
    path = source.path
    if earlier.source is None:
        return None
    try:
        if journal_kind(path) != "wal":
            return None
        conn = connect_live(path, timeout=READ_WAIT_S)
    except (OSError, sqlite3.Error):
        return None  # the capture meets the same problem, and says what it is
    try:
        # An empty WAL has nothing to fold in: the proof needs no checkpoint.
        if not wal_empty(path):
            _checkpoint(conn)
        with hold_main_file(path, conn) as held:
            if held is not None and proves_unchanged(held, earlier.source, source):
                return Unchanged(source, earlier)
    except sqlite3.Error:
        pass
    finally:
        conn.close()
    return None


def capture_database(source: DatabaseSource, dest: Path) -> CapturedDatabase:
    """Snapshot `source` into `dest` (which must not exist) and prove the snapshot."""
    path = source.path
    try:
        st = os.stat(path)
        kind = journal_kind(path)  # None: not a database at all
    except FileNotFoundError:
        raise  # gone since discovery: the caller lists it as vanished
    except OSError as err:
        raise from_os_error(err, "reading a database") from err
    if kind is None:
        return _raw_capture(source, st, NOT_A_DATABASE)

    try:
        conn = connect_live(path, timeout=READ_WAIT_S)
    except sqlite3.Error as err:
        raise from_sqlite_error(err, "opening", path) from err
    recorded: SourceFacts | None = None
    try:
        # A rollback-journal database has no WAL to fold in; its writers' locks are waited for
        # by VACUUM INTO's read, with the bounded busy timeout below.
        checkpoint = _checkpoint(conn) if kind == "wal" else None
        # The snapshot is read on `conn`, which cannot run VACUUM inside a transaction: the
        # hold is on a connection of its own.
        hold = hold_main_file(path) if kind == "wal" else contextlib.nullcontext(None)
        with hold as held:
            conn.execute(f"PRAGMA busy_timeout={int(READ_WAIT_S * 1000)}")
            # VACUUM INTO writes its output with this connection's sync setting. The snapshot
            # is a private temporary file whose bytes end up in an archive that is fsynced as
            # a whole, so syncing it too only costs time. This connection writes nothing to
            # the live file.
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("VACUUM INTO ?", (os.fspath(dest),))
            if held is not None and still_held(path, held):
                recorded = facts(held, source)
    except sqlite3.Error as err:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        if is_database_defect(err):
            return _raw_capture(source, st, error_text(err))
        raise from_sqlite_error(err, "capturing", path) from err
    finally:
        conn.close()

    check = check_database(dest)
    identity = check.identity
    role: Role = source.role
    if identity is not None and identity.role == "agent" and source.role == "other":
        # A stray agent database found by the scan says what it is; only the fixed global path
        # may claim the global role, so a copy of it elsewhere stays "other".
        role = "agent"
    # The registry's id, where it has one, is the id the gateway uses; else schema_meta's.
    agent_id = source.agent_id or (identity.agent_id if identity else None)
    if role == "global":
        agent_id = None
    return CapturedDatabase(
        source=source,
        file=dest,
        captured_as="snapshot",
        role=role,
        agent_id=agent_id,
        schema_version=identity.schema_version if identity else None,
        user_version=identity.user_version if identity else None,
        integrity=check.integrity,
        checkpoint=checkpoint,
        journal_mode=kind,
        size_bytes=dest.stat().st_size,
        mode=stat.S_IMODE(st.st_mode),
        mtime=st.st_mtime,
        findings=source_findings(check, role=role, agent_id=agent_id) if check.ok else [],
        owner=(st.st_uid, st.st_gid),
        source_facts=recorded if check.ok else None,
    )
