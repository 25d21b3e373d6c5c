"""`push` and `backup --to`: upload an archive, record the copy in the ledger, clean up after
runs that were cut short.

The run holds the state dir's backup lock while it uploads, so the multipart uploads it finds
left under the remote for this state dir's own keys belong to no live run: they are aborted
before the upload starts (contract: no unfinished upload is left behind after the next run).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive.format import parse_archive_name
from ..archive.reader import ZstdFrameReader, is_encrypted_source, read_seal
from ..archive.source import LocalSource, Readable
from ..errors import BackupError, InputError, IntegrityError
from ..ops import ledger
from ..progress import ProgressCallback
from ..state.layout import StateLayout, existing_layout
from ..state.lock import state_lock
from .catalog import own_keys
from .client import make_client
from .upload import Expected, RemoteCopy, abort_unfinished, upload_file
from .url import Remote, RemoteObject, remote_from

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass
class PushReport:
    archive: Path
    copy: RemoteCopy
    cleaned: list[str] = field(default_factory=list)  # unfinished uploads aborted first
    recorded: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "archive": os.fspath(self.archive),
            **self.copy.to_dict(),
            "aborted_uploads": self.cleaned,
            "recorded": self.recorded,
            "warnings": self.warnings,
            "elapsed_seconds": round(self.copy.seconds, 3),
        }


def require_remote(url: str | None, option: str) -> Remote:
    remote = remote_from(url)
    if remote is None:
        raise InputError(f"no remote: pass {option} s3://BUCKET/PREFIX or set $BACKUPKIT_REMOTE")
    return remote


def push_archive(
    archive: str | os.PathLike[str],
    to: str | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    retention_days: int | None = None,
    wait: float = 0.0,
    progress: ProgressCallback | None = None,
) -> PushReport:
    """Upload an existing archive to `to` (else $BACKUPKIT_REMOTE) and prove the copy. A plain
    archive is checked against its own seal on the way (a damaged file is never uploaded).
    Recorded in the ledger of the state dir; waits `wait` seconds for a running backup."""
    remote = require_remote(to, "--to")
    path = Path(os.path.abspath(archive))
    layout = existing_layout(state_dir)
    with state_lock(layout.lock_path, wait=wait):
        return upload_recorded(
            layout,
            path,
            remote,
            expect=_seal_expectation(path),
            retention_days=retention_days,
            progress=progress,
        )


def _seal_expectation(path: Path) -> Expected | None:
    """What a sealed plain archive's bytes before the seal must hash to. A seal over the whole
    stream says it at once; a seal over each frame's sha256 is proven here first, by reading
    the frames (zstd checks each one on the way), and their bytes' sha256 kept for the upload
    to match, so the bytes sent are the bytes proven."""
    src = LocalSource(path)
    try:
        if is_encrypted_source(src):
            return None
        frame_size, seal = read_seal(src)
        if frame_size is None or seal is None:
            return None
        if seal.kind == "stream":
            return Expected.whole(frame_size, seal.digest)
        tee = _Tee(src.stream(frame_size))
        reader = ZstdFrameReader(tee, limit=frame_size, per_frame=True)
        try:
            reader.drain()
        except IntegrityError as err:
            raise IntegrityError(
                f"the archive on disk is not the one written ({err}): not uploading {path}; "
                "run verify on it"
            ) from err
        if reader.seal_digest() != seal.digest:
            raise IntegrityError(
                f"the archive on disk is not the one written (its frames differ from its "
                f"seal): not uploading {path}; run verify on it"
            )
        return Expected.whole(frame_size, tee.digest.digest())
    finally:
        src.close()


class _Tee:
    """Hands bytes on, hashing them as they pass."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self.digest.update(data)
        return data


def upload_recorded(
    layout: StateLayout,
    path: Path,
    remote: Remote,
    *,
    expect: Expected | None,
    retention_days: int | None,
    progress: ProgressCallback | None,
    client: S3Client | None = None,
) -> PushReport:
    """Upload under the caller's lock: abort what earlier runs left, record `started`, upload
    and prove, record `ok` (or `failed`, and raise)."""
    client = client or make_client()
    parsed = parse_archive_name(path.name)
    backup_id = parsed[0] if parsed else None
    book = ledger.read(layout.global_db)
    keys = own_keys(book, remote) | {remote.object(path.name).key}
    warnings: list[str] = []
    cleaned: list[str] = []

    def started(obj: RemoteObject) -> None:
        row = ledger.remote_row(
            "started",
            created_at=_now_ms(),
            url=obj.url,
            backup_id=backup_id,
            body={"archive": os.fspath(path)},
        )
        warning = ledger.record(layout.global_db, [row])
        if warning:
            warnings.append(warning)

    try:
        cleaned = abort_unfinished(client, remote, keys)
        copy = upload_file(
            path,
            remote,
            backup_id=backup_id,
            expect=expect,
            retention_days=retention_days,
            progress=progress,
            client=client,
            on_started=started,
        )
    except BackupError as err:
        row = ledger.remote_row(
            "failed",
            created_at=_now_ms(),
            url=remote.object(path.name).url,
            backup_id=backup_id,
            body={"archive": os.fspath(path), "error": str(err), "exit_code": err.exit_code},
        )
        ledger.record(layout.global_db, [row])
        raise
    row = ledger.remote_row(
        "ok",
        created_at=_now_ms(),
        url=copy.url,
        backup_id=backup_id,
        body={"archive": os.fspath(path), **copy.to_dict()},
    )
    warning = ledger.record(layout.global_db, [row])
    if warning:
        warnings.append(warning)
    return PushReport(path, copy, cleaned, recorded=warning is None, warnings=warnings)


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)
