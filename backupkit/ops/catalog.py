"""The catalogue: this state dir's archives, from its ledger and the directories it writes to.

Backs `list`, `status` and `prune`. An archive belongs to this state dir when its ledger lists it
or its manifest names this state dir; another state dir's archive in a shared directory is
foreign, shown as such and never counted or pruned. Archives are found through the paths the
ledger recorded, wherever they were written, and by scanning the given directories. Reads only.
An encrypted archive the ledger does not know is of unknown owner: no key is needed here, so
its manifest is never read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..archive.format import is_encrypted_name, parse_archive_name, parse_backup_id
from ..archive.reader import read_manifest
from ..errors import BackupError
from ..state.layout import existing_layout, resolve_output_dir
from . import ledger
from .ledger import Kind, Ledger, Row


class Owner(StrEnum):
    THIS = "this"  # in this state dir's ledger, or its manifest names this state dir
    FOREIGN = "foreign"  # its manifest names another state dir
    UNKNOWN = "unknown"  # not in the ledger, and its manifest could not be read (or is encrypted)


@dataclass(frozen=True)
class Check:
    """The newest proof of an archive: a backup's own read-back, or a full verify."""

    kind: str
    ok: bool
    at: datetime
    defects: list[str]


@dataclass
class Entry:
    backup_id: str
    created_at: datetime  # UTC
    archive: Path | None
    size_bytes: int | None
    reason: str | None
    status: str | None  # the backup row's status (ok, failed, pruned); None: not in the ledger
    last_check: Check | None
    on_disk: bool
    in_ledger: bool
    owner: Owner = Owner.THIS

    @property
    def encrypted(self) -> bool:
        return self.archive is not None and is_encrypted_name(self.archive.name)

    @property
    def verified_ok(self) -> bool:
        return self.last_check is not None and self.last_check.ok

    def to_dict(self) -> dict[str, Any]:
        check = self.last_check
        return {
            "backup_id": self.backup_id,
            "created_at": _iso(self.created_at),
            "archive": os.fspath(self.archive) if self.archive else None,
            "size_bytes": self.size_bytes,
            "reason": self.reason,
            "status": self.status,
            "last_check": None
            if check is None
            else {
                "kind": check.kind,
                "ok": check.ok,
                "checked_at": _iso(check.at),
                "defects": check.defects,
            },
            "on_disk": self.on_disk,
            "in_ledger": self.in_ledger,
            "owner": str(self.owner),
            "encrypted": self.encrypted,
        }


@dataclass
class Catalogue:
    entries: list[Entry] = field(default_factory=list)  # newest first
    problems: list[str] = field(default_factory=list)

    def own(self) -> list[Entry]:
        return [e for e in self.entries if e.owner is Owner.THIS]


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def _size(path: Path) -> int | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size


def catalogue(
    state_dir: Path, ledger: Ledger, dirs: Iterable[Path], *, read_unknown: bool = True
) -> Catalogue:
    """Merge the ledger's backup rows with the archives found in `dirs`. `read_unknown` reads the
    manifest of an archive the ledger does not know, to learn whose it is (it streams the file);
    without it such an archive is of unknown owner."""
    cat = Catalogue(problems=list(ledger.problems))
    checks = _checks(ledger.rows)
    by_path: dict[str, Entry] = {}
    for row in ledger.of_kind(Kind.BACKUP):
        if not row.archive_path or _real(row.archive_path) in by_path:
            continue
        path = Path(row.archive_path)
        size = _size(path)
        # The row's time in ms, not the id's in seconds: two backups in one second keep order.
        when = _ms_to_dt(row.created_at) if row.created_at else parse_backup_id(row.id)
        if when is None:
            continue
        entry = Entry(
            row.id, when, path, size, row.reason, row.status, None, size is not None, True
        )
        by_path[_real(path)] = entry
    known_ids = {e.backup_id for e in by_path.values()}
    for directory in dict.fromkeys(dirs):
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            parsed = parse_archive_name(name)
            path = directory / name
            if parsed is None or _real(path) in by_path:
                continue
            backup_id, when = parsed
            reason, owner = None, Owner.UNKNOWN
            if backup_id in known_ids:
                owner = Owner.THIS  # the ledger knows it by id: a copy, or moved by hand
            elif read_unknown and not is_encrypted_name(name):
                reason, owner = _owner_from_manifest(path, backup_id, state_dir)
            entry = Entry(
                backup_id, when, path, _size(path), reason, None, None, True, False, owner
            )
            by_path[_real(path)] = entry
    for entry in by_path.values():
        entry.last_check = _latest(checks, entry)
    cat.entries = sorted(by_path.values(), key=lambda e: (e.created_at, e.backup_id), reverse=True)
    return cat


def _owner_from_manifest(path: Path, backup_id: str, state_dir: Path) -> tuple[str | None, Owner]:
    try:
        manifest = read_manifest(path)
    except BackupError:
        return None, Owner.UNKNOWN
    if manifest.backup_id != backup_id:
        return None, Owner.UNKNOWN
    ours = os.path.normpath(manifest.state_dir) == os.path.normpath(state_dir)
    return manifest.reason, Owner.THIS if ours else Owner.FOREIGN


def _checks(rows: list[Row]) -> list[tuple[str | None, str | None, Check]]:
    """(archive realpath, backup id, check) of every read-back and verify row, newest first."""
    out = []
    for row in rows:
        if row.kind not in (Kind.READ_BACK, Kind.VERIFY):
            continue
        defects = (row.payload or {}).get("defects", [])
        check = Check(
            str(row.kind),
            row.ok,
            _ms_to_dt(row.created_at),
            [str(d) for d in defects] if isinstance(defects, list) else [],
        )
        path = _real(row.archive_path) if row.archive_path else None
        out.append((path, row.backup_id, check))
    return out


def _latest(checks: list[tuple[str | None, str | None, Check]], entry: Entry) -> Check | None:
    """The newest check of this archive file, or of its backup id. A check that never reached a
    manifest knows only the file, and counts for that file."""
    path = _real(entry.archive) if entry.archive else None
    best: Check | None = None
    for c_path, c_id, check in checks:
        matches = (path is not None and c_path == path) or c_id == entry.backup_id
        if matches and (best is None or check.at > best.at):
            best = check
    return best


def list_archives(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
) -> Catalogue:
    """`backupkit list`: this state dir's archives and runs, newest first, with the last check
    of each; another state dir's archives in the same directory come back as foreign."""
    layout = existing_layout(state_dir)
    out = resolve_output_dir(output, layout.state_dir)
    return catalogue(layout.state_dir, ledger.read(layout.global_db), [out])
