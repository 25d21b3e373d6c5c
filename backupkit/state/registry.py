"""The gateway's registry of agent databases: `agent_databases(agent_id, path, ...)` in the
global database. Read by discovery (rows may point outside the state dir), rewritten by a
restore (paths follow the databases to where they now stand). All of its SQL lives here.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import lexically_within
from ..sqlite.connect import connect_live, open_readonly

_HAS_TABLE = "SELECT 1 FROM sqlite_master WHERE type='table' AND name='agent_databases'"


@dataclass(frozen=True)
class RegistryRow:
    agent_id: str
    path: str  # as stored: absolute, or relative to the state dir


def read_registry(global_db: Path) -> list[RegistryRow]:
    """Every row with a path, read without creating or changing any file. Raises sqlite3.Error
    for a database that cannot be read; the caller decides what that means."""
    with open_readonly(global_db) as conn:
        if not conn.execute(_HAS_TABLE).fetchone():
            return []
        return [
            RegistryRow(str(agent_id), str(path))
            for agent_id, path in conn.execute("SELECT agent_id, path FROM agent_databases")
            if path
        ]


def rewrite_registry(
    global_db: Path, mapping: dict[str, str], old_state: str, new_state: Path
) -> int:
    """Point `agent_databases.path` at where each database now stands; keep every other column.
    `mapping` takes a database's old absolute path to its new one; a path under the old state
    dir that is not in it moves with the state dir. Returns how many rows changed."""
    conn = connect_live(global_db, timeout=30.0)
    changed = 0
    try:
        if not conn.execute(_HAS_TABLE).fetchone():
            return 0
        conn.execute("BEGIN IMMEDIATE")
        for rowid, raw in conn.execute("SELECT rowid, path FROM agent_databases").fetchall():
            if not raw or not isinstance(raw, str):
                continue
            old = os.path.normpath(raw if os.path.isabs(raw) else os.path.join(old_state, raw))
            new = mapping.get(old)
            if new is None and lexically_within(old, old_state):
                new = os.fspath(new_state / os.path.relpath(old, old_state))
            if new is not None and new != raw:
                conn.execute("UPDATE agent_databases SET path=? WHERE rowid=?", (new, rowid))
                changed += 1
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return changed
