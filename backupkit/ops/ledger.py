"""The `backup_runs` ledger in the global database: typed rows, and all of its SQL.

Columns are fixed by the contract: `id, created_at (ms), archive_path, status, manifest_json`.
A row's kind is told by its status, never by its id:

| kind      | status                         | manifest_json                          |
| --------- | ------------------------------ | -------------------------------------- |
| backup    | `ok`, `failed`, later `pruned` | the manifest, or the failure            |
| read-back | `read-back-ok`/`-failed`       | a backup's proof of its own archive     |
| verify    | `verify-ok`/`verify-failed`    | a full verify of an archive            |
| remote    | `remote-started`/`-ok`/`-failed`/`-pruned` | a remote copy (archive_path: URL) |

Remote rows are appended, never updated: the newest row of a URL says where that copy stands.

Writing: the table may be the gateway's own, with constraints of its own (`archive_path TEXT
NOT NULL`, a column more or one less): a row is fitted to the columns the live table has, so
every run leaves a row. A missing table is created with exactly the contract's columns; a
missing global database is never created. Reading: a row that cannot be parsed is reported
as a problem, never a crash.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .. import jsonio
from ..sqlite.connect import connect_live, open_readonly

TABLE = "backup_runs"
COLUMNS = ("id", "created_at", "archive_path", "status", "manifest_json")
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    "id TEXT PRIMARY KEY, created_at INTEGER, archive_path TEXT, status TEXT, manifest_json TEXT)"
)
# The gateway commits in short BEGIN IMMEDIATE transactions with a 30 s busy timeout; so do we.
BUSY_TIMEOUT_S = 30.0


class Kind(StrEnum):
    BACKUP = "backup"
    READ_BACK = "read-back"
    VERIFY = "verify"
    REMOTE = "remote"


BACKUP_STATUSES = ("ok", "failed", "pruned")
REMOTE_STATUSES = ("remote-started", "remote-ok", "remote-failed", "remote-pruned")
_CHECK_PREFIX = {Kind.READ_BACK: "read-back", Kind.VERIFY: "verify"}


def kind_of(status: str | None) -> Kind | None:
    if status in BACKUP_STATUSES:
        return Kind.BACKUP
    if status in REMOTE_STATUSES:
        return Kind.REMOTE
    for kind, prefix in _CHECK_PREFIX.items():
        if status in (f"{prefix}-ok", f"{prefix}-failed"):
            return kind
    return None


@dataclass(frozen=True)
class Row:
    """One ledger row as stored; `payload` is manifest_json parsed (None if absent)."""

    id: str
    created_at: int
    archive_path: str | None
    status: str
    payload: dict[str, Any] | None = None

    @property
    def kind(self) -> Kind | None:
        return kind_of(self.status)

    @property
    def ok(self) -> bool:
        return self.status == "ok" or self.status.endswith("-ok")

    @property
    def backup_id(self) -> str | None:
        if self.kind is Kind.BACKUP:
            return self.id
        value = (self.payload or {}).get("backup_id")
        return value if isinstance(value, str) else None

    @property
    def reason(self) -> str | None:
        value = (self.payload or {}).get("reason")
        return value if isinstance(value, str) else None


@dataclass
class Ledger:
    """Every row that could be read, newest first, and a line for each that could not."""

    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    found: bool = True  # False: no global database, so no ledger at all

    def of_kind(self, kind: Kind) -> list[Row]:
        return [r for r in self.rows if r.kind is kind]


def backup_row(
    backup_id: str, created_at: int, archive_path: str, status: str, payload: dict[str, Any]
) -> Row:
    return Row(backup_id, created_at, archive_path, status, payload)


def check_row(
    kind: Kind,
    *,
    created_at: int,
    archive_path: str,
    ok: bool,
    backup_id: str | None,
    defects: list[str],
    databases: list[dict[str, Any]],
    warnings: list[str] | None = None,
) -> Row:
    """A read-back or verify result, recorded against the archive file it read (and its backup
    id when the manifest was reached)."""
    prefix = _CHECK_PREFIX[kind]
    row_id = f"{prefix}:{backup_id or 'unknown'}:{created_at}:{secrets.token_hex(2)}"
    body = {
        "kind": str(kind),
        "backup_id": backup_id,
        "archive": archive_path,
        "ok": ok,
        "defects": defects,
        "databases": databases,
        "warnings": warnings or [],
    }
    return Row(row_id, created_at, archive_path, f"{prefix}-{'ok' if ok else 'failed'}", body)


def remote_row(
    status: str, *, created_at: int, url: str, backup_id: str | None, body: dict[str, Any]
) -> Row:
    """A remote copy's state (`started`, `ok`, `failed`, `pruned`), recorded against its URL.
    `body` never holds credentials: the URL, sizes, checksums, the proof, the lock, an error."""
    row_id = f"remote:{backup_id or 'unknown'}:{created_at}:{secrets.token_hex(2)}"
    payload = {"kind": str(Kind.REMOTE), "backup_id": backup_id, "url": url, **body}
    return Row(row_id, created_at, url, f"remote-{status}", payload)


def record(global_db: Path, rows: list[Row], *, replace: bool = True) -> str | None:
    """Insert rows in one short transaction (`replace=False` keeps rows already there).
    Returns None on success, or a one-line warning saying why nothing was recorded."""
    return _insert(global_db, lambda columns: [_values(r, columns) for r in rows], replace)


def _insert(
    global_db: Path,
    values_for: Callable[[list[str]], list[list[object]]],
    replace: bool,
) -> str | None:
    if not global_db.is_file():
        return f"global database {global_db} not found: run not recorded in {TABLE}"
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute(CREATE_TABLE)
        columns, fill = _fit(conn)
        names = ", ".join(columns + list(fill))
        marks = ", ".join("?" for _ in range(len(columns) + len(fill)))
        conn.executemany(
            f"{verb} INTO {TABLE} ({names}) VALUES ({marks})",
            [v + list(fill.values()) for v in values_for(columns)],
        )

    return _transaction(global_db, insert, f"could not record the run in {global_db}")


def _transaction(
    global_db: Path, work: Callable[[sqlite3.Connection], None], failed: str
) -> str | None:
    """Run `work` in one short BEGIN IMMEDIATE transaction, as the gateway's own writers do;
    None on success, else `failed` and SQLite's reason as one line."""
    try:
        conn = connect_live(global_db, timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute("BEGIN IMMEDIATE")
            work(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as err:
        return f"{failed}: {err}"
    return None


def _fit(conn: sqlite3.Connection) -> tuple[list[str], dict[str, object]]:
    """Our columns that the live table has, and a value for each NOT NULL column without a
    default that only the live table has (a schema newer than ours)."""
    info = conn.execute(f"PRAGMA table_info({TABLE})").fetchall()
    have = {row[1] for row in info}
    columns = [c for c in COLUMNS if c in have]
    fill: dict[str, object] = {}
    for _cid, name, decl, notnull, default, pk in info:
        if name in COLUMNS or not notnull or default is not None or pk:
            continue
        fill[name] = 0 if "INT" in str(decl).upper() else ""
    return columns, fill


def _values(row: Row, columns: list[str]) -> list[object]:
    payload = jsonio.dumps(row.payload).decode() if row.payload is not None else None
    every = {
        "id": row.id,
        "created_at": row.created_at,
        "archive_path": row.archive_path if row.archive_path is not None else "",
        "status": row.status,
        "manifest_json": payload,
    }
    return [every[c] for c in columns]


def read(global_db: Path) -> Ledger:
    """Every row, newest first, read without creating or changing any file."""
    if not global_db.is_file():
        return Ledger(found=False)
    ledger = Ledger()
    try:
        with open_readonly(global_db) as conn:
            raw = _select(conn, " ORDER BY created_at DESC, id DESC")
    except (sqlite3.Error, OSError, UnicodeDecodeError) as err:
        ledger.problems.append(f"the ledger in {global_db} cannot be read: {err}")
        return ledger
    for values in raw:
        row = _parse(values)
        if isinstance(row, str):
            ledger.problems.append(row)
        else:
            ledger.rows.append(row)
    return ledger


def _parse(values: tuple[object, ...]) -> Row | str:
    row_id, created_at, archive_path, status, manifest_json = values
    if not isinstance(row_id, str) or not isinstance(status, str):
        return f"ledger row {row_id!r} has no usable id or status"
    if not isinstance(created_at, int):
        return f"ledger row {row_id} has no usable created_at"
    payload: dict[str, Any] | None = None
    if manifest_json is not None:
        try:
            if not isinstance(manifest_json, str | bytes):
                raise TypeError("manifest_json is neither text nor a blob")
            parsed = jsonio.loads(manifest_json)
        except (ValueError, TypeError):
            return f"ledger row {row_id} ({status}) holds manifest_json that is not JSON"
        if not isinstance(parsed, dict):
            return f"ledger row {row_id} ({status}) holds manifest_json that is not an object"
        payload = parsed
    path = archive_path if isinstance(archive_path, str) and archive_path else None
    return Row(row_id, created_at, path, status, payload)


def mark_pruned(global_db: Path, ids: list[str]) -> str | None:
    """Mark backup rows whose archives were deleted; a warning line if that failed."""
    if not global_db.is_file() or not ids:
        return None

    def mark(conn: sqlite3.Connection) -> None:
        conn.executemany(f"UPDATE {TABLE} SET status='pruned' WHERE id=?", [(i,) for i in ids])

    return _transaction(global_db, mark, f"archives deleted, but {TABLE} could not be marked")


def recent_good_backups(global_db: Path, limit: int) -> list[Row]:
    """The newest `limit` backup rows with status `ok`, newest first, read without creating or
    changing any file; [] when the ledger cannot be read (a backup then reuses nothing)."""
    if not global_db.is_file():
        return []
    try:
        with open_readonly(global_db) as conn:
            clauses = " WHERE status='ok' ORDER BY created_at DESC, id DESC LIMIT ?"
            rows = _select(conn, clauses, (limit,))
    except (sqlite3.Error, OSError, UnicodeDecodeError):
        return []
    return [row for row in map(_parse, rows) if isinstance(row, Row)]


def read_raw(global_db: Path) -> list[tuple[object, ...]]:
    """Every row exactly as stored, to carry over a restore that replaces the database."""
    if not global_db.is_file():
        return []
    with open_readonly(global_db) as conn:
        return _select(conn, "")


def _select(
    conn: sqlite3.Connection, clauses: str, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    """Every row as our five columns (NULL for one the live table lacks); [] with no table."""
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)
    ).fetchone():
        return []
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")}
    select = ", ".join(c if c in have else "NULL" for c in COLUMNS)
    return list(conn.execute(f"SELECT {select} FROM {TABLE}{clauses}", params).fetchall())


def insert_raw(global_db: Path, raw: list[tuple[object, ...]]) -> str | None:
    """Add rows read by `read_raw` that the ledger does not hold yet; a warning if it failed."""

    def values_for(columns: list[str]) -> list[list[object]]:
        every = [dict(zip(COLUMNS, v, strict=True)) for v in raw]
        return [[row[c] for c in columns] for row in every]

    return _insert(global_db, values_for, replace=False)
