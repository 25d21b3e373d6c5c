"""The `backup_runs` ledger in the global database (CONTRACT section 6).

Written only after an archive is complete, so an archive never holds its own row. The global
database is never created to record a run: if it is missing, nothing is recorded and the caller
says so.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .sqlite_files import connect_live, open_readonly

CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS backup_runs ("
    "id TEXT PRIMARY KEY, created_at INTEGER, archive_path TEXT, status TEXT, manifest_json TEXT)"
)
# The gateway commits in short BEGIN IMMEDIATE transactions with a 30 s busy timeout; so do we.
BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Run:
    id: str
    created_at: int
    archive_path: str | None
    status: str
    manifest_json: str | None


def record_run(global_db: Path, run: Run, *, replace: bool = True) -> str | None:
    """Insert one row; return None on success, or a one-line warning saying why not."""
    return record_runs(global_db, [run], replace=replace)


def record_runs(global_db: Path, runs: list[Run], *, replace: bool = True) -> str | None:
    """Insert rows in one short transaction (`replace=False` keeps rows already there)."""
    if not global_db.is_file():
        return f"global database {global_db} not found: run not recorded in backup_runs"
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    try:
        conn = connect_live(global_db, timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(CREATE_TABLE)
            conn.executemany(
                f"{verb} INTO backup_runs (id, created_at, archive_path, status, manifest_json) "
                "VALUES (?, ?, ?, ?, ?)",
                [(r.id, r.created_at, r.archive_path, r.status, r.manifest_json) for r in runs],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as err:
        return f"could not record the run in {global_db}: {err}"
    return None


def read_runs(global_db: Path) -> list[Run]:
    """Every ledger row, newest first, read without creating or changing any file."""
    if not global_db.is_file():
        return []
    with open_readonly(global_db) as conn:
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='backup_runs'"
        ).fetchone():
            return []
        rows = conn.execute(
            "SELECT id, created_at, archive_path, status, manifest_json FROM backup_runs "
            "ORDER BY created_at DESC, id DESC"
        ).fetchall()
    return [Run(*row) for row in rows]
