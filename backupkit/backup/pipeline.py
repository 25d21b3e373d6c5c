"""The backup pipeline: discover, capture every database, pack one archive, prove it, record it.

Captures run in worker threads (sqlite3 releases the GIL inside `VACUUM INTO`) while the main
thread streams files and finished snapshots into the compressor, so capture hides behind
compression. At most `workers + 1` snapshots wait in staging at a time, which bounds staging disk.
A database proven unchanged since the newest good archive is copied from it instead (reuse.py).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from ..archive.crypt import Recipients, resolve_recipients
from ..archive.format import MANIFEST_NAME, archive_name, new_backup_id
from ..archive.manifest import (
    Encryption,
    Manifest,
)
from ..archive.writer import COMPRESSION_LEVELS, ArchiveWriter, Finished
from ..errors import (
    EXIT_ENVIRONMENT,
    BackupError,
    EnvironmentFault,
    InputError,
    IntegrityError,
    from_os_error,
)
from ..fsutil import ensure_private_dir, fsync_dir, publish, remove_stale_staging, staging_dir
from ..offsite.push import upload_recorded
from ..offsite.upload import Expected, RemoteCopy
from ..offsite.url import Remote, remote_from
from ..ops import ledger
from ..progress import Meter, ProgressCallback, emit
from ..restore.journal import recover
from ..state.discover import DatabaseSource, discover
from ..state.layout import StateLayout, existing_layout, resolve_output_dir
from ..state.lock import state_lock
from ..version import __version__
from .capture import CapturedDatabase, Unchanged, capture_database, prove_unchanged
from .pack import PackedDatabase, PackedTree, pack_database, pack_tree
from .readback import read_back_defects
from .reuse import EarlierArchive, candidate_for, copy_unchanged, earlier_archive, with_frame

# Unchanged databases copied in one go (see _run): enough to wait for the compressor rarely.
REUSE_BATCH = 64
# Reasons whose snapshot exists to be rolled back to: it must be proven, so verify is forced.
ALWAYS_VERIFIED_REASONS = frozenset({"pre-migration", "pre-restore"})


@dataclass
class BackupResult:
    """What a backup wrote and what it proved.

    `source_problems` are databases that failed their check at the source (the archive keeps
    them as they were, and every other database in it restores); `archive_problems` are defects
    of the archive itself (its read-back failed). Either makes the status "failed".
    """

    backup_id: str
    archive: Path
    status: Literal["ok", "failed"]
    size_bytes: int
    manifest: Manifest
    source_problems: list[str] = field(default_factory=list)
    archive_problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verified: bool | None = None
    recorded: bool = False
    seconds: float = 0.0
    written: Finished | None = None
    remote: RemoteCopy | None = None  # the proven offsite copy, with `to`
    remote_error: BackupError | None = None  # why there is none, with `to`

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def problems(self) -> list[str]:
        return self.source_problems + self.archive_problems

    @property
    def input_bytes(self) -> int:
        m = self.manifest
        return sum(d.size_bytes for d in m.databases) + sum(f.size_bytes for f in m.files)

    def raise_for_status(self) -> None:
        if not self.ok:
            raise IntegrityError(f"backup {self.archive} is not proven: {'; '.join(self.problems)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backup_id": self.backup_id,
            "archive": os.fspath(self.archive),
            "status": self.status,
            "created_at": self.manifest.created_at,
            "size_bytes": self.size_bytes,
            "input_bytes": self.input_bytes,
            "databases": [
                {
                    "role": d.role,
                    "agent_id": d.agent_id,
                    "archive_path": d.archive_path,
                    "size_bytes": d.size_bytes,
                    "integrity": d.integrity,
                    "findings": d.findings,
                    "reused_from": d.reused_from,
                }
                for d in self.manifest.databases
            ],
            "file_count": len(self.manifest.files),
            "skipped_count": len(self.manifest.skipped),
            "encrypted": self.manifest.encryption is not None,
            "recipient_count": (
                self.manifest.encryption.recipients if self.manifest.encryption else 0
            ),
            "problems": self.problems,
            "warnings": self.warnings,
            "verified": self.verified,
            "recorded": self.recorded,
            "remote": self._remote_dict(),
            "elapsed_seconds": round(self.seconds, 3),
        }

    def _remote_dict(self) -> dict[str, Any] | None:
        if self.remote is not None:
            return {"ok": True, **self.remote.to_dict()}
        if self.remote_error is not None:
            err = self.remote_error
            return {"ok": False, "error": str(err), "exit_code": err.exit_code}
        return None


def create_backup(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    reason: str = "manual",
    verify: bool = True,
    include_workspaces: bool = True,
    excludes: tuple[str, ...] = (),
    wait: float = 0.0,
    compression: str = "default",
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    keep_unproven: bool | None = None,
    encrypt_to: tuple[str, ...] | list[str] = (),
    recipients_file: str | os.PathLike[str] | None = None,
    recipients: Recipients | None = None,
    to: str | None = None,
    retention_days: int | None = None,
    reuse: bool = True,
    _hold_lock: bool = True,
) -> BackupResult:
    """Back up a state dir into one archive. Returns the result; raises `BackupError` when no
    archive could be written (the run is recorded as failed where possible).

    A database that fails its check at the source does not stop the run: everything else is
    captured, the result's status is "failed" and `source_problems` names it (the CLI exits 1).
    The archive is kept (it holds everything else, and that database as it was) unless
    `keep_unproven` is false, which is the default for `pre-migration` snapshots: those exist to
    be rolled back to, and must not look like a rollback point when they are not one.

    With `encrypt_to` (public keys), `recipients_file` or `$BACKUPKIT_RECIPIENTS_FILE`, the
    archive is `.tar.zst.age`, age-encrypted to those recipients (docs/encryption.md); only
    public keys are needed, and the read-back then proves the ciphertext on disk.

    With `to` (an `s3://BUCKET/PREFIX` URL, else $BACKUPKIT_REMOTE) a proven archive is then
    uploaded and its remote copy proven (docs/offsite.md), still under the lock; the result's
    `remote` is the copy, or `remote_error` says why there is none. `retention_days` locks the
    copy (S3 Object Lock).

    With `reuse` (the default), a database proven unchanged since the newest good archive of
    this state dir has its member copied from that archive, byte for byte (docs/backup.md);
    `reuse=False` captures every database.
    """
    if compression not in COMPRESSION_LEVELS:
        raise InputError(
            f"unknown compression {compression!r}: use {', '.join(COMPRESSION_LEVELS)}"
        )
    if reason in ALWAYS_VERIFIED_REASONS:
        verify = True
    if keep_unproven is None:
        keep_unproven = reason != "pre-migration"
    keys = resolve_recipients(encrypt_to, recipients_file, recipients)
    remote = remote_from(to)  # a bad URL is refused before anything is written
    if retention_days is not None and remote is None:
        raise InputError("--retention-days locks a remote copy: give --to s3://BUCKET/PREFIX")
    layout = existing_layout(state_dir)
    out = resolve_output_dir(output, layout.state_dir)
    started = time.monotonic()
    lock = state_lock(layout.lock_path, wait=wait) if _hold_lock else contextlib.nullcontext()
    with lock:
        recovered = recover(layout) if _hold_lock else None
        now = datetime.now(UTC)
        backup_id = new_backup_id(now)
        final = out / archive_name(backup_id, encrypted=keys is not None)
        try:
            result = _run(
                layout,
                final,
                backup_id,
                now,
                reason=reason,
                include_workspaces=include_workspaces,
                excludes=excludes,
                level=COMPRESSION_LEVELS[compression],
                workers=workers or min(2, os.cpu_count() or 1),
                progress=progress,
                recipients=keys,
                reuse=reuse,
            )
        except BaseException as err:
            # Every run leaves a row, whatever went wrong: a bug included, or monitoring
            # would stay green while every run fails the same way.
            if isinstance(err, BackupError):
                message, code = str(err), err.exit_code
            elif isinstance(err, KeyboardInterrupt):
                message, code = "interrupted", EXIT_ENVIRONMENT
            else:
                message, code = f"internal error: {err!r}", EXIT_ENVIRONMENT
            failure = {
                "backup_id": backup_id,
                "reason": reason,
                "error": message,
                "exit_code": code,
                "encrypted": keys is not None,
            }
            row = ledger.backup_row(backup_id, _ms(now), os.fspath(final), "failed", failure)
            warning = ledger.record(layout.global_db, [row])
            if warning and isinstance(err, BackupError):
                err.add_note(warning)
            raise
        rows = []
        if verify and result.written is not None:
            meter = Meter(progress, "read-back", result.size_bytes)
            defects = read_back_defects(result.archive, result.written, meter)
            meter.finish()
            result.verified = not defects
            result.archive_problems.extend(f"read-back: {d}" for d in defects)
            rows.append(_read_back_row(result, defects))
        if result.problems:
            result.status = "failed"
        if not result.ok and not keep_unproven:
            with contextlib.suppress(FileNotFoundError):
                result.archive.unlink()
            fsync_dir(result.archive.parent)
            result.archive_problems.append(
                f"archive {result.archive.name} removed: it is no rollback point"
            )
        emit(progress, "record", 0, 1)
        payload = _json_manifest(result.manifest)
        backup = ledger.backup_row(
            backup_id, _ms(now), os.fspath(result.archive), result.status, payload
        )
        warning = ledger.record(layout.global_db, [backup, *rows])
        result.recorded = warning is None
        if warning:
            result.warnings.append(warning)
        if recovered:
            result.warnings.insert(0, recovered)
        emit(progress, "record", 1, 1)
        if remote is not None:
            _upload(result, layout, remote, retention_days, progress)
    result.seconds = time.monotonic() - started
    return result


def _upload(
    result: BackupResult,
    layout: StateLayout,
    remote: Remote,
    retention_days: int | None,
    progress: ProgressCallback | None,
) -> None:
    """The offsite copy of a proven archive, proven against the bytes that were written."""
    written = result.written
    if not result.ok or written is None or not result.archive.exists():
        result.remote_error = IntegrityError(f"not uploaded to {remote}: the backup is not proven")
        return
    if written.cipher is not None:
        expect = Expected.whole(written.cipher.size_bytes, written.cipher.sha256)
    else:
        expect = Expected(written.frames)
    try:
        pushed = upload_recorded(
            layout,
            result.archive,
            remote,
            expect=expect,
            retention_days=retention_days,
            progress=progress,
        )
    except BackupError as err:
        result.remote_error = err
        return
    result.remote = pushed.copy
    result.warnings.extend(pushed.warnings)
    if pushed.cleaned:
        result.warnings.append(
            f"aborted {len(pushed.cleaned)} unfinished upload(s) an earlier run left in {remote}"
        )


def _json_manifest(manifest: Manifest) -> dict[str, Any]:
    return manifest.model_dump(mode="json")


def _read_back_row(result: BackupResult, defects: list[str]) -> ledger.Row:
    return ledger.check_row(
        ledger.Kind.READ_BACK,
        created_at=_ms(datetime.now(UTC)),
        archive_path=os.fspath(result.archive),
        ok=not defects,
        backup_id=result.backup_id,
        defects=defects,
        databases=[
            {"archive_path": d.archive_path, "integrity": d.integrity, "checked": "at capture"}
            for d in result.manifest.databases
        ],
        warnings=[
            "encrypted: the ciphertext on disk was proven (sha256, age header, length), not "
            "decrypted; verify --identity decrypts and checks it all"
        ]
        if result.manifest.encryption is not None
        else None,
    )


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


# What a capture job comes back with (a Future's type does not widen by itself).
_Outcome = CapturedDatabase | Unchanged | None


class _Captures:
    """Runs captures in a thread pool, at most `window` snapshots in staging at a time.

    A database the earlier archive holds is first proven unchanged, or not (`prove_unchanged`,
    which writes nothing to staging, so any number may be in flight); only one that is not
    proven is queued for a capture."""

    def __init__(
        self,
        databases: list[DatabaseSource],
        stage: Path,
        workers: int,
        earlier: EarlierArchive | None,
        meter: Meter,
    ) -> None:
        self._pending: deque[tuple[int, DatabaseSource]] = deque()
        self._next_index = len(databases)
        self._stage = stage
        self._window = workers + 1
        self._capturing = 0
        self._meter = meter
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="capture")
        # Freeing a large file's blocks takes the file system a while; do it off the packing path.
        self._reaper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unlink")
        self._running: dict[Future[_Outcome], Job] = {}
        for index, source in enumerate(databases):
            earlier_entry = candidate_for(earlier, source)
            if earlier_entry is None:
                self._pending.append((index, source))
                continue
            proof = self._pool.submit(prove_unchanged, source, earlier_entry)
            self._running[cast("Future[_Outcome]", proof)] = Job(index, source, proof=True)
        self._submit()

    def _submit(self) -> None:
        while self._pending and self._capturing < self._window:
            index, source = self._pending.popleft()
            dest = self._stage / f"db-{index:05d}.sqlite"
            capture = self._pool.submit(self._capture, source, dest)
            self._running[cast("Future[_Outcome]", capture)] = Job(index, source)
            self._capturing += 1

    def _capture(self, source: DatabaseSource, dest: Path) -> CapturedDatabase:
        self._meter.begin(source.archive_path)
        try:
            return capture_database(source, dest)
        finally:
            self._meter.end(source.archive_path, source.size_bytes)

    def recapture(self, source: DatabaseSource) -> None:
        """Capture in full a database whose earlier member could not be reused after all."""
        self._pending.appendleft((self._next_index, source))
        self._next_index += 1
        self._submit()

    def ready(self) -> bool:
        """Has a capture or proof finished that `finished` has not handed out yet?"""
        return any(fut.done() for fut in self._running)

    def finished(
        self,
    ) -> Iterator[tuple[DatabaseSource, CapturedDatabase | Unchanged | None]]:
        """Each capture as it completes, and each database proven unchanged; None for a
        database that was gone by its turn."""
        while self._running:
            done, _ = wait(self._running, return_when=FIRST_COMPLETED)
            for fut in done:
                job = self._running.pop(fut)
                try:
                    captured = fut.result()
                except FileNotFoundError:
                    captured = None
                if not job.proof:
                    self._capturing -= 1
                elif captured is None:  # not proven unchanged: capture it
                    self._pending.append((job.index, job.source))
                    self._submit()
                    continue
                self._submit()
                yield job.source, captured

    def release(self, captured: CapturedDatabase) -> None:
        """The snapshot is in the archive: remove it, which bounds staging disk to the window."""
        if captured.captured_as == "snapshot":
            self._reaper.submit(_unlink_quietly, captured.file)

    def close(self) -> None:
        self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._reaper.shutdown(wait=True)


def _pack_databases(
    writer: ArchiveWriter,
    captures: _Captures,
    earlier: EarlierArchive | None,
    tree: PackedTree,
    problems: list[str],
    warnings: list[str],
    capture_meter: Meter,
    pack_meter: Meter,
) -> list[PackedDatabase]:
    """Every database into the archive as its capture finishes: a snapshot packed, or an
    unchanged database's member copied from the earlier archive (else captured after all)."""
    packed: list[PackedDatabase] = []
    # Unchanged members are copied in batches: each copy must wait for the compressor to
    # drain what went before it, so copying many in a row waits once.
    batch: list[Unchanged] = []

    def reuse() -> None:
        for unchanged in _reuse_batch(writer, earlier, batch, packed, warnings, captures):
            # Copied, not captured or compressed: the meters count it as done.
            name, size = unchanged.source.archive_path, unchanged.source.size_bytes
            capture_meter.end(name, size)
            pack_meter.end(name, size)

    while True:
        for source, captured in captures.finished():
            if isinstance(captured, Unchanged):
                batch.append(captured)
                # Copy while nothing else is ready to pack, or once the batch is full.
                if len(batch) >= REUSE_BATCH or not captures.ready():
                    reuse()
                continue
            entry = pack_database(writer, captured, pack_meter) if captured is not None else None
            if captured is None or entry is None:
                if captured is None:
                    pack_meter.grow(-source.size_bytes)
                tree.vanished(source.path)
                warnings.append(tree.warnings[-1])
            else:
                packed.append(entry)
                captures.release(captured)
                if captured.damaged:
                    problems.append(
                        f"database {captured.source.path} fails its check: {captured.integrity}"
                    )
                else:
                    warnings.extend(
                        f"{captured.source.path}: {finding}" for finding in captured.findings
                    )
        if not batch:
            return packed
        # Round again, to pack what the databases that could not be copied capture.
        reuse()


def _reuse_batch(
    writer: ArchiveWriter,
    earlier: EarlierArchive | None,
    batch: list[Unchanged],
    packed: list[PackedDatabase],
    warnings: list[str],
    captures: _Captures,
) -> list[Unchanged]:
    """Copy unchanged databases' members from the earlier archive into `packed`, and empty
    the batch; a database whose bytes there are not the ones recorded gets a warning and is
    captured in full instead. Returns those copied."""
    assert earlier is not None  # only candidates of an earlier archive come back unchanged
    copied: list[Unchanged] = []
    for unchanged in batch:
        member = copy_unchanged(writer, earlier, unchanged)
        if member is None:
            warnings.append(
                f"{earlier.path}: the member {unchanged.source.archive_path} is not as recorded "
                "(changed or cut short): captured in full instead"
            )
            captures.recapture(unchanged.source)
            continue
        entry, index = member
        assert entry.frames is not None
        packed.append(PackedDatabase(entry, index, entry.frames.tar_bytes))
        copied.append(unchanged)
    batch.clear()
    return copied


@dataclass(frozen=True)
class Job:
    index: int  # the database's place in discovery's order: names its staging file
    source: DatabaseSource
    proof: bool = False  # a proof that it is unchanged, not a capture


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


_OUTPUT_FIX = "choose another --output (or $BACKUPKIT_DIR), or let this user write there"


def _ready_output(out: Path) -> None:
    """The output directory exists and this user can write into it, or the run stops before
    it starts, saying which of the two is the problem and what to do."""
    try:
        ensure_private_dir(out)
    except OSError as err:
        raise from_os_error(err, f"creating the output directory {out}", _OUTPUT_FIX) from err
    if os.access(out, os.W_OK | os.X_OK):
        return
    if os.statvfs(out).f_flag & os.ST_RDONLY:
        why = "is on a read-only file system"
    else:
        why = f"is not writable by this user ({_user_name()})"
    raise EnvironmentFault(f"output directory {out} {why}: {_OUTPUT_FIX}")


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _run(
    layout: StateLayout,
    final: Path,
    backup_id: str,
    now: datetime,
    *,
    reason: str,
    include_workspaces: bool,
    excludes: tuple[str, ...],
    level: int,
    workers: int,
    progress: ProgressCallback | None,
    recipients: Recipients | None,
    reuse: bool,
) -> BackupResult:
    emit(progress, "discover", 0, 1, os.fspath(layout.state_dir))
    inv = discover(layout, include_workspaces=include_workspaces, excludes=excludes)
    emit(progress, "discover", 1, 1, f"{len(inv.databases)} databases, {len(inv.files)} files")
    out = final.parent
    _ready_output(out)
    remove_stale_staging(out)
    problems: list[str] = []
    warnings = list(inv.notes)
    with staging_dir(out, backup_id) as stage:
        tmp = stage / (final.name + ".part")
        writer = ArchiveWriter(tmp, level=level, recipients=recipients)
        captures: _Captures | None = None
        # An encrypted archive takes no copied bytes (reuse.py): it is captured in full.
        earlier = earlier_archive(layout) if reuse and recipients is None else None
        try:
            capture_meter = Meter(progress, "capture", sum(d.size_bytes for d in inv.databases))
            pack_meter = Meter(progress, "pack", inv.total_bytes)
            captures = _Captures(inv.databases, stage, workers, earlier, capture_meter)
            tree = pack_tree(writer, inv, pack_meter)
            warnings.extend(tree.warnings)
            packed = _pack_databases(
                writer, captures, earlier, tree, problems, warnings, capture_meter, pack_meter
            )
            databases = [with_frame(p.entry, writer.frame(p.frame), p.tar_bytes) for p in packed]
            order = {d.archive_path: i for i, d in enumerate(inv.databases)}
            databases.sort(key=lambda d: order[d.archive_path])
            manifest = Manifest(
                backup_id=backup_id,
                created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                reason=reason,
                tool_version=__version__,
                state_dir=os.fspath(layout.state_dir),
                databases=databases,
                files=tree.files,
                skipped=inv.skipped + tree.skipped,
                links=tree.links,
                directories=tree.directories,
                sealed=True,
                config_path=os.fspath(layout.config_path),
                credentials_dir=os.fspath(layout.credentials_dir),
                encryption=None
                if recipients is None
                else Encryption(
                    recipients=len(recipients), recipient_fingerprints=recipients.fingerprints
                ),
            )
            writer.add_bytes(MANIFEST_NAME, manifest.to_json_bytes(), mtime=now.timestamp())
            written = writer.finish()
            capture_meter.finish()
            pack_meter.finish()
        except BaseException:
            writer.abort()
            raise
        finally:
            if captures is not None:
                captures.close()
            if earlier is not None:
                earlier.close()
        try:
            publish(tmp, final)
        except OSError as err:
            raise from_os_error(err, "publishing the archive") from err
    return BackupResult(
        backup_id=backup_id,
        archive=final,
        status="ok" if not problems else "failed",
        size_bytes=written.size_bytes,
        manifest=manifest,
        source_problems=problems,
        written=written,
        warnings=warnings,
    )
