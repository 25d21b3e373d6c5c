"""Restored databases: point the registry at where they now stand, then prove each one with
the one database check, where it was placed."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..archive.manifest import Manifest
from ..errors import IntegrityError
from ..sqlite.check import DatabaseCheck, archive_defects, check_database
from ..state.registry import rewrite_registry
from .plan import Member, RestoreReport


def finish_databases(
    report: RestoreReport,
    manifest: Manifest,
    members: list[Member],
    dest_of: Callable[[Member], Path],
    new_state: Path,
    write_path: Callable[[Member], Path] | None = None,
    checks: dict[str, DatabaseCheck] | None = None,
) -> None:
    """Rewrite the registry in the restored global database, then prove every placed database
    (in parallel: sqlite3 releases the GIL). `checks` made on the same bytes while they streamed
    in are taken as they are, except for a database the registry rewrite changed, which is
    checked again. `write_path` is where a database is now (its staged name in place), if that
    is not its destination."""
    where_of = write_path or dest_of
    placed = [m for m in members if m.kind == "database"]
    mapping = {os.path.normpath(m.source_path): os.fspath(dest_of(m)) for m in placed}
    entries = {d.archive_path: d for d in manifest.databases}
    known = dict(checks or {})
    for m in placed:
        entry = entries[m.archive_path]
        if entry.role == "global" and entry.integrity == "ok":
            changed = rewrite_registry(where_of(m), mapping, manifest.state_dir, new_state)
            if changed:
                report.notes.append(f"rewrote {changed} agent_databases paths to new locations")
                known.pop(m.archive_path, None)
    todo = [m for m in placed if m.archive_path not in known]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        fresh = dict(
            zip(
                (m.archive_path for m in todo),
                pool.map(lambda m: check_database(where_of(m)), todo),
                strict=True,
            )
        )
    for m in placed:
        entry = entries[m.archive_path]
        check = known.get(m.archive_path) or fresh[m.archive_path]
        report.databases.append({"path": os.fspath(dest_of(m)), "integrity": check.integrity})
        defects = archive_defects(entry, check)
        if defects:
            raise IntegrityError(f"restored database {dest_of(m)} is not sound: {defects[0]}")
        if entry.integrity != "ok" and entry.captured_as == "snapshot":
            report.warnings.append(
                f"{dest_of(m)} was damaged at the source ({entry.integrity}): restored as it was"
            )
        report.warnings.extend(f"{dest_of(m)}: {finding}" for finding in entry.findings)
