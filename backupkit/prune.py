"""Prune: apply a retention policy to the archives in an output directory.

Safety rules on top of the policy, each one a reason an archive survives:
- only files backupkit made are ever candidates (the archive name pattern, and a backup the
  ledger knows or whose manifest can be read);
- `pre-migration` and `pre-restore` snapshots stay out of the policy unless asked for;
- the newest archive whose last verify succeeded is never deleted.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Entry, catalogue
from .fsutil import fsync_dir
from .ledger import read_runs
from .locations import layout_for, resolve_output_dir, resolve_state_dir
from .retention import Policy, select
from .sqlite_files import connect_live

PROTECTED_REASONS = frozenset({"pre-migration", "pre-restore"})


@dataclass
class PruneItem:
    backup_id: str
    archive: str
    created_at: str
    reason: str | None
    keep: bool
    why: list[str]

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class PruneReport:
    output_dir: Path
    policy: str
    dry_run: bool
    items: list[PruneItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def removed(self) -> list[PruneItem]:
        return [i for i in self.items if not i.keep]

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": os.fspath(self.output_dir),
            "policy": self.policy,
            "dry_run": self.dry_run,
            "keep": [i.to_dict() for i in self.items if i.keep],
            "remove": [i.to_dict() for i in self.removed],
            "warnings": self.warnings,
        }


def prune(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    policy: Policy,
    output: str | os.PathLike[str] | None = None,
    reasons: list[str] | None = None,
    dry_run: bool = False,
) -> PruneReport:
    """Delete the archives the policy does not keep (or, with `dry_run`, say which)."""
    state = resolve_state_dir(state_dir)
    out = resolve_output_dir(output, state)
    global_db = layout_for(state).global_db
    entries = [e for e in catalogue(out, read_runs(global_db)) if e.on_disk]
    report = PruneReport(out, policy.describe(), dry_run)
    newest_verified = next((e for e in entries if e.verified_ok), None)

    in_policy: list[Entry] = []
    for e in entries:
        why: list[str] = []
        if not e.in_ledger and e.reason is None:
            why.append("not provably a backupkit archive (no ledger row, unreadable manifest)")
        elif reasons is not None and e.reason not in reasons:
            why.append(f"reason {e.reason!r} not selected")
        elif reasons is None and e.reason in PROTECTED_REASONS:
            why.append(f"protected {e.reason} snapshot")
        if why:
            report.items.append(_item(e, True, why))
        else:
            in_policy.append(e)
    decisions = select([e.created_at.astimezone() for e in in_policy], policy)
    for e, decision in zip(in_policy, decisions, strict=True):
        why = [f"keep-{r}" for r in decision.reasons]
        keep = decision.keep
        if e is newest_verified:
            keep = True
            why.append("newest verified archive")
        report.items.append(_item(e, keep, why or ["no rule keeps it"]))
    report.items.sort(key=lambda i: i.created_at, reverse=True)
    if dry_run:
        return report
    for item in report.removed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(item.archive)
    if report.removed:
        fsync_dir(out)
        warning = _mark_pruned(global_db, [i.backup_id for i in report.removed])
        if warning:
            report.warnings.append(warning)
    return report


def _item(e: Entry, keep: bool, why: list[str]) -> PruneItem:
    return PruneItem(
        backup_id=e.backup_id,
        archive=os.fspath(e.archive),
        created_at=e.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        reason=e.reason,
        keep=keep,
        why=why,
    )


def _mark_pruned(global_db: Path, ids: list[str]) -> str | None:
    if not global_db.is_file():
        return None
    try:
        conn = connect_live(global_db, timeout=30.0)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE backup_runs SET status='pruned' WHERE id=?", [(i,) for i in ids]
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as err:
        return f"archives deleted, but backup_runs could not be marked: {err}"
    return None
