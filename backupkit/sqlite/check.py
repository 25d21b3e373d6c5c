"""The one database check: what capture, verify and restore each run on a database file.

`check_database` runs a full `PRAGMA integrity_check`, `PRAGMA foreign_key_check` and reads what
the database says about itself (`schema_meta`, `user_version`). Two judgements are made from it,
and only these two:

- `source_findings`: what is true of the database but is no defect of an archive (foreign-key
  violations, which the gateway's tools can leave since they run with `foreign_keys` off; a
  `schema_meta` that disagrees with where the database lives). Capture records them in the
  manifest; verify must find the same list again.
- `archive_defects`: what makes an archived copy unfaithful to its manifest entry. Only these fail
  verify or stop a restore.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .connect import connect_snapshot

if TYPE_CHECKING:
    from ..archive.manifest import DatabaseEntry

# The integrity value of a file named like a database that does not start like one: it is kept
# byte for byte, and is a finding rather than a damaged database.
NOT_A_DATABASE = "file is not a database"

# What sqlite3 hands back for a column value, with no converters registered.
SQLiteValue = int | float | str | bytes | None


@dataclass(frozen=True)
class Identity:
    """What a database says about itself: `schema_meta` and `PRAGMA user_version`."""

    role: str | None
    schema_version: int | None
    agent_id: str | None
    user_version: int


def _as_int(value: SQLiteValue) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_identity(conn: sqlite3.Connection) -> Identity:
    """Read `schema_meta` in either shape seen in the wild, tolerating its absence.

    The gateway writes one row with `role`, `schema_version`, `agent_id` columns; older files use
    `key`/`value` rows. A foreign file may have neither.
    """
    user_version = conn.execute("PRAGMA user_version").fetchone()[0]
    cols = [row[1] for row in conn.execute("PRAGMA table_info(schema_meta)")]
    meta: dict[str, SQLiteValue] = {}
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


@dataclass(frozen=True)
class DatabaseCheck:
    """The result of `check_database`: integrity ("ok" or the first error line), what the
    database says about itself, and its foreign-key violations counted per child -> parent."""

    integrity: str
    identity: Identity | None = None
    foreign_keys: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.integrity == "ok"


def check_database(path: Path) -> DatabaseCheck:
    """Check a database file that nobody else writes (a staging snapshot, a verify copy, a
    restored file). Opens it immutable, so nothing is created beside it, and memory-mapped."""
    try:
        conn = connect_snapshot(path, mmap=True)
        try:
            integrity = integrity_check(conn)
            if integrity != "ok":
                # What a damaged database says about itself is not evidence.
                return DatabaseCheck(integrity)
            identity = read_identity(conn)
            violations: Counter[str] = Counter()
            for table, _rowid, parent, _fkid in conn.execute("PRAGMA foreign_key_check"):
                violations[f"{table} -> {parent}"] += 1
        finally:
            conn.close()
    except (sqlite3.Error, UnicodeDecodeError, ValueError) as err:
        # A damaged page can make SQLite fail anywhere, even while quoting its own error.
        return DatabaseCheck(error_text(err) or "unreadable")
    return DatabaseCheck(integrity, identity, dict(sorted(violations.items())))


def source_findings(check: DatabaseCheck, *, role: str, agent_id: str | None) -> list[str]:
    """What the check says about the source that is not a defect of its archived copy, judged
    against the role and agent id the database has where it lives. Deterministic: verify
    recomputes it from the archived bytes and the manifest entry, and must get the same list."""
    findings = [f"foreign key violations: {n} in {pair}" for pair, n in check.foreign_keys.items()]
    ident = check.identity
    if ident is None:
        return findings
    if role in ("global", "agent") and ident.role is not None and ident.role != role:
        findings.append(f"schema_meta says role {ident.role}, but it lives as the {role} database")
    if role == "agent" and ident.agent_id is not None and agent_id not in (None, ident.agent_id):
        findings.append(
            f"schema_meta says agent {ident.agent_id}, but it is registered as {agent_id}"
        )
    return findings


def archive_defects(entry: DatabaseEntry, check: DatabaseCheck) -> list[str]:
    """How the archived copy checked in `check` differs from what its manifest entry says.
    An entry that capture already recorded as not ok is kept as the bytes it was: its sha256
    (compared by the caller) is the whole proof, and it is never a defect here."""
    name = entry.archive_path
    if entry.integrity != "ok":
        return []
    if not check.ok:
        return [f"{name}: integrity_check failed: {check.integrity}"]
    defects = []
    ident = check.identity
    if (
        ident is not None
        and entry.user_version is not None
        and ident.user_version != entry.user_version
    ):
        defects.append(f"{name}: user_version {ident.user_version}, manifest {entry.user_version}")
    if ident is not None and ident.schema_version != entry.schema_version:
        defects.append(
            f"{name}: schema_version {ident.schema_version}, manifest {entry.schema_version}"
        )
    found = source_findings(check, role=entry.role, agent_id=entry.agent_id)
    if found != entry.findings:
        recorded = entry.findings or "none"
        defects.append(f"{name}: findings {found or 'none'} differ from the manifest's {recorded}")
    return defects
