"""`prune --remote`: the local retention rules, applied to this state dir's remote copies.

On top of the policy, each of these keeps a copy: it is not provably this state dir's (another
gateway's copies may share the prefix); it is a protected pre-migration or pre-restore
snapshot; it is the newest proven remote copy; it is still under S3 Object Lock (said, and
left: the server would refuse anyway). A versioned bucket's copy is deleted by its version id,
so the bytes are gone, not hidden behind a delete marker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..ops import ledger
from ..ops.prune import PruneItem, PruneOutcome, decide, prune_item
from ..ops.retention import Policy
from ..state.layout import existing_layout
from .catalog import RemoteEntry, remote_catalogue
from .client import is_not_found, make_client, translate
from .push import require_remote


@dataclass(kw_only=True)
class RemotePruneReport(PruneOutcome):
    remote: str
    locked: list[PruneItem] = field(default_factory=list)  # the policy let go, the lock kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "url": self.remote,
            **self._decisions(),
            "locked": [i.to_dict() for i in self.locked],
            "warnings": self.warnings,
        }


def prune_remote(
    state_dir: str | os.PathLike[str] | None = None,
    remote: str | None = None,
    *,
    policy: Policy,
    reasons: list[str] | None = None,
    dry_run: bool = False,
) -> RemotePruneReport:
    """Delete the remote copies the policy does not keep (or, with `dry_run`, say which)."""
    where = require_remote(remote, "--remote")
    layout = existing_layout(state_dir)
    book = ledger.read(layout.global_db)
    client = make_client()
    cat = remote_catalogue(client, book, where)
    report = RemotePruneReport(
        remote=where.url, policy=policy.describe(), dry_run=dry_run, warnings=list(cat.problems)
    )
    doomed: list[tuple[RemoteEntry, PruneItem]] = []
    for e, keep, why in decide(
        cat.entries, policy, reasons, newest=cat.newest_proven(), newest_why="newest proven copy"
    ):
        item = prune_item(e, e.url, keep, why)
        report.items.append(item)
        if not keep:
            doomed.append((e, item))
    now = datetime.now(UTC)
    rows = []
    for e, item in doomed:
        try:
            head = client.head_object(Bucket=where.bucket, Key=e.key)
        except Exception as err:
            if is_not_found(err):
                continue
            raise translate(err, "looking up", e.url) from err
        until = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockLegalHoldStatus") == "ON" or (
            isinstance(until, datetime) and until > now
        ):
            item.keep = True
            lock = until.isoformat() if isinstance(until, datetime) else "a legal hold"
            item.why.append(f"locked until {lock}")
            report.locked.append(item)
            continue
        if dry_run:
            continue
        version = head.get("VersionId")
        try:
            if version and version != "null":
                client.delete_object(Bucket=where.bucket, Key=e.key, VersionId=version)
            else:
                client.delete_object(Bucket=where.bucket, Key=e.key)
        except Exception as err:
            raise translate(err, "deleting", e.url) from err
        rows.append(
            ledger.remote_row(
                "pruned",
                created_at=int(now.timestamp() * 1000),
                url=e.url,
                backup_id=e.backup_id,
                body={"size_bytes": e.size_bytes, "policy": report.policy},
            )
        )
    report.items.sort(key=lambda i: i.created_at, reverse=True)
    if rows:
        warning = ledger.record(layout.global_db, rows)
        if warning:
            report.warnings.append(warning)
    return report
