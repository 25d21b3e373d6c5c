"""Prune: apply a retention policy to this state dir's archives.

Safety rules on top of the policy, each one a reason an archive survives:
- only this state dir's archives are ever candidates (its ledger lists them, or their manifest
  names this state dir); another state dir's archives in a shared directory, and files whose
  owner cannot be proven, are never touched;
- `pre-migration` and `pre-restore` snapshots stay out of the policy unless asked for;
- the newest archive whose last check (read-back or verify) succeeded is never deleted, and an
  archive whose last check failed never counts as that one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..fsutil import fsync_dir
from ..state.layout import existing_layout, resolve_output_dir
from . import ledger
from .catalog import Owner, catalogue
from .retention import Policy, select

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
        # Whether it is kept is said by the list it is in (`kept` or `removed`).
        # `why` is one sentence, as restore's items give theirs.
        body = {k: v for k, v in self.__dict__.items() if k != "keep"}
        return {**body, "why": ", ".join(self.why)}


@dataclass(kw_only=True)
class PruneOutcome:
    """What a prune kept and let go, local or remote alike."""

    policy: str
    dry_run: bool
    items: list[PruneItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def removed(self) -> list[PruneItem]:
        return [i for i in self.items if not i.keep]

    def _decisions(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "dry_run": self.dry_run,
            "kept": [i.to_dict() for i in self.items if i.keep],
            "removed": [i.to_dict() for i in self.removed],
        }


@dataclass(kw_only=True)
class PruneReport(PruneOutcome):
    output_dir: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "output_dir": os.fspath(self.output_dir),
            **self._decisions(),
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
    """Delete the archives the policy does not keep (or, with `dry_run`, say which).
    Only archives in `output` (default: the state dir's backup directory) are candidates."""
    layout = existing_layout(state_dir)
    out = resolve_output_dir(output, layout.state_dir)
    global_db = layout.global_db
    cat = catalogue(layout.state_dir, ledger.read(global_db), [out])
    entries = [
        e
        for e in cat.entries
        if e.on_disk
        and e.archive is not None
        and os.path.realpath(e.archive.parent) == os.path.realpath(out)
    ]
    report = PruneReport(
        output_dir=out, policy=policy.describe(), dry_run=dry_run, warnings=list(cat.problems)
    )
    newest_verified = next((e for e in entries if e.owner is Owner.THIS and e.verified_ok), None)
    for e, keep, why in decide(
        entries, policy, reasons, newest=newest_verified, newest_why="newest verified archive"
    ):
        report.items.append(prune_item(e, os.fspath(e.archive or ""), keep, why))
    report.items.sort(key=lambda i: i.created_at, reverse=True)
    if dry_run:
        return report
    for item in report.removed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(item.archive)
    if report.removed:
        fsync_dir(out)
        warning = ledger.mark_pruned(global_db, [i.backup_id for i in report.removed])
        if warning:
            report.warnings.append(warning)
    return report


class Candidate(Protocol):
    @property
    def backup_id(self) -> str: ...
    @property
    def owner(self) -> Owner: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...


C = TypeVar("C", bound=Candidate)
_NOT_OURS = {
    Owner.FOREIGN: "another state dir's archive",
    Owner.UNKNOWN: "not provably this state dir's archive (not in its ledger, manifest unread)",
}


def decide(
    entries: Sequence[C],
    policy: Policy,
    reasons: list[str] | None,
    *,
    newest: C | None,
    newest_why: str,
) -> list[tuple[C, bool, list[str]]]:
    """(entry, keep, why) for each entry: the safety rules first (only this state dir's,
    protected snapshots unless their reason is asked for), then the policy, and `newest`, the
    one proven copy that must survive, always kept. Local and remote prune share it."""
    out: list[tuple[C, bool, list[str]]] = []
    in_policy: list[C] = []
    for e in entries:
        why: list[str] = []
        if e.owner is not Owner.THIS:
            why.append(_NOT_OURS[e.owner])
        elif reasons is not None and e.reason not in reasons:
            why.append(f"reason {e.reason!r} not selected")
        elif reasons is None and e.reason in PROTECTED_REASONS:
            why.append(f"protected {e.reason} snapshot")
        if why:
            out.append((e, True, why))
        else:
            in_policy.append(e)
    decisions = select([e.created_at.astimezone() for e in in_policy], policy)
    for e, decision in zip(in_policy, decisions, strict=True):
        why = [f"keep-{r}" for r in decision.reasons]
        keep = decision.keep
        if e is newest:
            keep = True
            why.append(newest_why)
        out.append((e, keep, why or ["no rule keeps it"]))
    return out


def prune_item(e: Candidate, archive: str, keep: bool, why: list[str]) -> PruneItem:
    """One decision, about the archive (a path or a URL) that `e` stands for."""
    return PruneItem(
        backup_id=e.backup_id,
        archive=archive,
        created_at=e.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        reason=e.reason,
        keep=keep,
        why=why,
    )
