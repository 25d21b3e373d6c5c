"""The catalogue: archives on disk merged with the `backup_runs` ledger, newest first.

Backs `list`, `status` and `prune`. Reads only: the ledger is read without creating or changing
any file, and an archive's manifest is read only for an archive the ledger does not know.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from .errors import BackupError
from .ledger import Run

NAME = re.compile(r"^openclaw-backup-(\d{8}T\d{6}Z)-([0-9a-f]{8})\.tar\.zst$")


@dataclass
class Verification:
    ok: bool
    at: datetime
    defects: list[str]


@dataclass
class Entry:
    backup_id: str
    created_at: datetime  # UTC
    archive: Path | None  # None: the ledger lists it but the file is gone
    size_bytes: int | None
    reason: str | None
    status: str | None  # ledger status: ok, failed, pruned; None: not in the ledger
    last_verify: Verification | None
    on_disk: bool
    in_ledger: bool

    @property
    def verified_ok(self) -> bool:
        return self.last_verify is not None and self.last_verify.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "archive": os.fspath(self.archive) if self.archive else None,
            "size_bytes": self.size_bytes,
            "reason": self.reason,
            "status": self.status,
            "last_verify": None
            if self.last_verify is None
            else {
                "ok": self.last_verify.ok,
                "at": self.last_verify.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "defects": self.last_verify.defects,
            },
            "on_disk": self.on_disk,
            "in_ledger": self.in_ledger,
        }


def parse_name(name: str) -> tuple[str, datetime] | None:
    match = NAME.match(name)
    if not match:
        return None
    stamp, tag = match.groups()
    when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return f"{stamp}-{tag}", when


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _manifest_reason(path: Path, backup_id: str) -> str | None:
    """The reason in an archive's own manifest; None when the file is not provably ours (the
    manifest is unreadable, or names another backup than the file name does). Streams the
    archive: used only for archives the ledger does not know."""
    from .show import read_manifest

    try:
        manifest = read_manifest(path)
    except BackupError:
        return None
    return manifest.reason if manifest.backup_id == backup_id else None


def catalogue(output_dir: Path, runs: list[Run], *, read_unknown: bool = True) -> list[Entry]:
    """Merge the archives in `output_dir` with the ledger rows `runs` (`ledger.read_runs`)."""
    backups: dict[str, Run] = {}
    verifies: dict[str, Verification] = {}
    for run in runs:
        if run.id.startswith("verify:"):
            body = orjson.loads(run.manifest_json or "{}")
            backup_id = body.get("backup_id") or run.id.split(":")[1]
            seen = verifies.get(backup_id)
            when = _ms_to_dt(run.created_at)
            if seen is None or when > seen.at:
                verifies[backup_id] = Verification(
                    ok=run.status == "verify-ok", at=when, defects=list(body.get("defects", []))
                )
        elif run.id not in backups:
            backups[run.id] = run
    entries: dict[str, Entry] = {}
    try:
        names = sorted(os.listdir(output_dir))
    except FileNotFoundError:
        names = []
    for name in names:
        parsed = parse_name(name)
        if parsed is None:
            continue
        backup_id, when = parsed
        path = output_dir / name
        run = backups.get(backup_id)
        reason = _reason_of(run)
        if run is None and read_unknown:
            reason = _manifest_reason(path, backup_id)
        entries[backup_id] = Entry(
            backup_id=backup_id,
            created_at=when,
            archive=path,
            size_bytes=path.stat().st_size,
            reason=reason,
            status=run.status if run else None,
            last_verify=verifies.get(backup_id),
            on_disk=True,
            in_ledger=run is not None,
        )
    for backup_id, run in backups.items():
        if backup_id in entries or not run.archive_path:
            continue
        if Path(run.archive_path).parent != output_dir:
            continue  # written to another output dir: not this catalogue's business
        entries[backup_id] = Entry(
            backup_id=backup_id,
            created_at=_ms_to_dt(run.created_at),
            archive=None,
            size_bytes=None,
            reason=_reason_of(run),
            status=run.status,
            last_verify=verifies.get(backup_id),
            on_disk=False,
            in_ledger=True,
        )
    return sorted(entries.values(), key=lambda e: (e.created_at, e.backup_id), reverse=True)


def _reason_of(run: Run | None) -> str | None:
    if run is None or not run.manifest_json:
        return None
    try:
        body = orjson.loads(run.manifest_json)
    except orjson.JSONDecodeError:
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason) if reason is not None else None
