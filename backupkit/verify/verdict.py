"""Verify: prove that an archive restores exactly, or say precisely why not.

The verdict (docs/verify.md): an archive is ok when it holds exactly what its manifest lists,
every database the manifest records as `integrity: "ok"` passes the database check now, and the
findings the check makes are the ones the manifest recorded. Findings about the source, and
databases recorded as damaged at the source, are warnings: a faithful copy of an imperfect
state is a good archive. The result is recorded in the ledger against the archive file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..archive.crypt import Identities, resolve_identities
from ..archive.manifest import Manifest
from ..archive.reader import is_encrypted_archive
from ..archive.source import ArchiveRef, archive_size, as_ref
from ..errors import IntegrityError
from ..ops import ledger
from ..progress import ProgressCallback
from ..sqlite.check import DatabaseCheck
from ..state.layout import layout_for, resolve_state_dir
from .scan import scan_archive


@dataclass
class VerifyReport:
    archive: ArchiveRef
    ok: bool
    defects: list[str]
    manifest: Manifest | None
    databases: list[dict[str, Any]] = field(default_factory=list)
    files_checked: int = 0
    recorded: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    encrypted: bool = False
    size_bytes: int | None = None  # the archive file's, when it could be read

    @property
    def input_bytes(self) -> int:
        """What the archive restores to: its databases and files, as the manifest sizes them."""
        m = self.manifest
        if m is None:
            return 0
        return sum(d.size_bytes for d in m.databases) + sum(f.size_bytes for f in m.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "archive": str(self.archive),
            "backup_id": self.manifest.backup_id if self.manifest else None,
            "size_bytes": self.size_bytes,
            "input_bytes": self.input_bytes if self.manifest else None,
            "defects": self.defects,
            "databases": self.databases,
            "member_count": self.files_checked,
            "encrypted": self.encrypted,
            "recorded": self.recorded,
            "warnings": self.warnings,
            "elapsed_seconds": round(self.seconds, 3),
        }


def source_warnings(manifest: Manifest) -> list[str]:
    """What the manifest says about the source that a user should hear: findings, and databases
    that were damaged at the source (kept as they were)."""
    out = []
    for d in manifest.databases:
        if d.integrity != "ok" and d.captured_as == "snapshot":
            out.append(f"{d.source_path} was damaged at the source ({d.integrity}): kept as it was")
        out.extend(f"{d.source_path}: {finding}" for finding in d.findings)
    return out


def _database_results(
    manifest: Manifest | None, checks: dict[str, DatabaseCheck]
) -> list[dict[str, Any]]:
    if manifest is None:
        return []
    out = []
    for d in manifest.databases:
        check = checks.get(d.archive_path)
        out.append(
            {
                "archive_path": d.archive_path,
                "role": d.role,
                "agent_id": d.agent_id,
                "recorded_integrity": d.integrity,
                "integrity": check.integrity if check else "not checked",
                "findings": d.findings,
            }
        )
    return out


def verify_archive(
    archive: str | os.PathLike[str] | ArchiveRef,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    record: bool = True,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    identity: str | os.PathLike[str] | Identities | None = None,
) -> VerifyReport:
    """Prove `archive` restorable. Returns a report (`.ok`); raises `InputError` (exit 2) for a
    missing file or one that is not a backupkit archive, and for an encrypted archive without
    an identity that opens it (`identity`, a file, else $BACKUPKIT_IDENTITY_FILE). Damage that
    stops reading (a tampered ciphertext included) is reported as a defect, not raised."""
    path = as_ref(archive)
    started = time.monotonic()
    encrypted = is_encrypted_archive(path)
    identities = resolve_identities(identity) if encrypted else None
    try:
        result = scan_archive(path, workers=workers, progress=progress, identities=identities)
    except IntegrityError as err:
        report = VerifyReport(archive=path, ok=False, defects=[str(err)], manifest=None)
        report.encrypted = encrypted
    else:
        report = VerifyReport(
            archive=path,
            ok=not result.defects,
            defects=result.defects,
            manifest=result.manifest,
            databases=_database_results(result.manifest, result.checks),
            files_checked=result.members,
            warnings=source_warnings(result.manifest),
            encrypted=encrypted,
        )
    report.size_bytes = archive_size(path) or None
    if record:
        record_verify(report, state_dir)
    report.seconds = time.monotonic() - started
    return report


def record_verify(report: VerifyReport, state_dir: str | os.PathLike[str] | None) -> None:
    """Write the result into the ledger of the state the archive belongs to, if it is here:
    the one named, else the one the manifest names, else the default state dir. A verify that
    never reached the manifest is recorded against the file alone, and counts for that file."""
    candidates = [resolve_state_dir(state_dir)] if state_dir is not None else []
    if state_dir is None and report.manifest is not None:
        candidates.append(Path(report.manifest.state_dir))
    if state_dir is None:
        candidates.append(resolve_state_dir(None))
    target = next((c for c in candidates if c.is_dir()), None)
    if target is None:
        report.warnings.append("no state dir on this machine: verify result not recorded")
        return
    row = ledger.check_row(
        ledger.Kind.VERIFY,
        created_at=int(datetime.now(UTC).timestamp() * 1000),
        archive_path=str(report.archive),
        ok=report.ok,
        backup_id=report.manifest.backup_id if report.manifest else None,
        defects=report.defects,
        databases=report.databases,
    )
    warning = ledger.record(layout_for(target).global_db, [row])
    report.recorded = warning is None
    if warning:
        report.warnings.append(warning)
