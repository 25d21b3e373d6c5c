"""Verify: prove that an archive restores exactly, or say precisely why not.

One streaming pass: the zstd frame and its checksum, the tar structure, every member's name and
type, each regular member's size and sha256. Database members (anything that starts with the
SQLite header) are copied to a private temporary file and checked in worker threads with a full
`integrity_check`, `foreign_key_check` and their `schema_meta`, while the stream goes on; at most
`workers + 1` copies exist at a time, so temporary disk stays bounded. The manifest is the last
member, so everything is compared with it at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import pydantic

from .errors import EnvironmentFault, IntegrityError, from_os_error
from .fsutil import fsync_file, remove_stale_staging, staging_dir, write_all
from .ledger import Run, record_run
from .locations import layout_for, resolve_state_dir
from .manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME, DatabaseEntry, Manifest
from .progress import ProgressCallback, emit
from .sqlite_files import (
    SQLITE_HEADER,
    connect_snapshot,
    error_text,
    integrity_check,
    read_identity,
)

MAX_MANIFEST_BYTES = 256 << 20
VERIFY_PREFIX = "backupkit-verify-"
COPY_CHUNK = 1 << 20
FORBIDDEN_SUFFIXES = ("-wal", "-shm", "-journal")
# Free space a restore leaves untouched on the target's file system (or 1 % of it, if smaller).
SPOOL_RESERVE_BYTES = 64 << 20


@dataclass
class DatabaseCheck:
    archive_path: str
    integrity: str
    foreign_keys: str
    role: str | None
    agent_id: str | None
    user_version: int | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class VerifyReport:
    archive: Path
    ok: bool
    defects: list[str]
    manifest: Manifest | None
    databases: list[dict[str, Any]] = field(default_factory=list)
    files_checked: int = 0
    recorded: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "archive": os.fspath(self.archive),
            "ok": self.ok,
            "backup_id": self.manifest.backup_id if self.manifest else None,
            "defects": self.defects,
            "databases": self.databases,
            "files_checked": self.files_checked,
            "recorded": self.recorded,
            "warnings": self.warnings,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Seen:
    kind: str  # file, dir, symlink
    size: int = 0
    sha256: str = ""
    mode: int = 0
    linkname: str = ""


def _name_defect(name: str) -> str | None:
    # A backslash is an ordinary character in a POSIX name (the state may hold one): not unsafe.
    if not name or name.startswith("/"):
        return f"member {name!r} has an absolute or unsafe name"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return f"member {name!r} climbs out of the archive with '..'"
    if name.endswith(FORBIDDEN_SUFFIXES):
        return f"member {name!r} is a SQLite sidecar, which an archive must never hold"
    return None


def check_database_file(path: Path, archive_path: str) -> DatabaseCheck:
    """The checks verify runs on every database: full integrity_check, foreign_key_check and
    what `schema_meta` says. Opens the file immutable: creates nothing beside it. The file must
    be one this process wrote (a verify copy, a restored file), so it may be memory-mapped."""
    identity = None
    fk = "not checked"
    try:
        conn = connect_snapshot(path, mmap=True)
        try:
            identity = read_identity(conn)
            integrity = integrity_check(conn)
            if integrity == "ok":
                fk_rows = conn.execute("PRAGMA foreign_key_check").fetchmany(1)
                fk = "ok" if not fk_rows else f"foreign key violation in table {fk_rows[0][0]}"
        finally:
            conn.close()
    except (sqlite3.Error, UnicodeDecodeError, ValueError) as err:
        # A damaged page can make SQLite fail anywhere, even while quoting its own error.
        integrity = error_text(err) or "unreadable"
    return DatabaseCheck(
        archive_path,
        integrity,
        fk,
        identity.role if identity else None,
        identity.agent_id if identity else None,
        identity.user_version if identity else None,
    )


def _check_database(path: Path, archive_path: str) -> DatabaseCheck:
    try:
        return check_database_file(path, archive_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _Checker:
    """Database checks in a thread pool. Verify's copies are temporary and bounded in number
    (`workers + 1` at a time); restore's spooled files are the restored files themselves, so
    they are kept and the stream never waits for a check (`keep=True`)."""

    def __init__(self, tmp: Path, workers: int, *, keep: bool = False) -> None:
        self._tmp = tmp
        self._keep = keep
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
        self._window = None if keep else workers + 1
        self._inflight: list[Future[DatabaseCheck]] = []
        self.results: dict[str, DatabaseCheck] = {}
        self._names: dict[Future[DatabaseCheck], str] = {}
        self._n = 0

    def submit(self, copy: Path, name: str) -> None:
        check = check_database_file if self._keep else _check_database
        fut = self._pool.submit(check, copy, name)
        self._names[fut] = name
        self._inflight.append(fut)
        while self._window is not None and len(self._inflight) >= self._window:
            self._collect(self._inflight.pop(0))

    def new_path(self) -> Path:
        self._n += 1
        return self._tmp / f"check-{self._n:05d}.sqlite"

    def _collect(self, fut: Future[DatabaseCheck]) -> None:
        self.results[self._names[fut]] = self._outcome(fut)

    def _outcome(self, fut: Future[DatabaseCheck]) -> DatabaseCheck:
        try:
            return fut.result()
        except Exception as err:  # any failure to check is a failed check, never a crash
            name = self._names[fut]
            return DatabaseCheck(
                name, f"could not be checked: {error_text(err)}", "not checked", None, None, None
            )

    def finish(self) -> dict[str, DatabaseCheck]:
        for fut in self._inflight:
            self._collect(fut)
        self._inflight.clear()
        self._pool.shutdown(wait=True)
        return self.results

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class Spool:
    """Restore's single pass: every regular member's bytes go to a file of their own under
    `root` (a private directory on the restore target's file system) as they stream by, so the
    archive is read once. Nothing is trusted until the whole archive has been checked against its
    manifest; the caller then renames the files into place, or removes `root`.

    Files are created 0600 with O_EXCL|O_NOFOLLOW, and each is fsynced by a background thread
    while the stream goes on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths: dict[str, Path] = {}
        self._claimed = 0  # bytes the spooled members' headers have declared so far
        self._budget: int | None = None
        self._n = 0
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsync")
        self._syncs: list[Future[None]] = []

    def create(self, member: tarfile.TarInfo) -> tuple[int, Path]:
        # The manifest comes last, so nothing says yet how much the archive will write. Every
        # member's declared size counts against what was free when the restore began, less a
        # reserve, and a member that would exceed it is refused before any of it is written:
        # a hostile archive cannot fill the target's file system, with one member or many.
        if self._budget is None:
            usage = shutil.disk_usage(self.root)
            self._budget = usage.free - min(SPOOL_RESERVE_BYTES, usage.total // 100)
        self._claimed += member.size
        if self._claimed > self._budget:
            raise EnvironmentFault(
                f"{member.name} needs {member.size} bytes, more than {self.root.parent} has "
                f"free for this restore ({max(self._budget, 0)} bytes, keeping a reserve)"
            )
        self._n += 1
        path = self.root / f"member-{self._n:06d}"
        try:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except OSError as err:
            raise from_os_error(err, "restoring a file") from err
        self.paths[member.name] = path
        return fd, path

    def written(self, path: Path) -> None:
        self._syncs.append(self._syncer.submit(fsync_file, path))

    def finish(self) -> None:
        """Wait until every spooled file is on disk."""
        try:
            for fut in self._syncs:
                fut.result()
        except OSError as err:
            raise from_os_error(err, "restoring a file") from err
        finally:
            self._syncer.shutdown(wait=True)

    def close(self) -> None:
        self._syncer.shutdown(wait=True, cancel_futures=True)


def _read_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    checker: _Checker | None,
    spool: Spool | None = None,
) -> tuple[_Seen, bytes | None]:
    """Hash a regular member; copy it aside for checking if it is a database (or, for restore,
    spool every member); keep the manifest."""
    src = tar.extractfile(member)
    assert src is not None
    digest = hashlib.sha256()
    size = 0
    head = src.read(len(SQLITE_HEADER))
    digest.update(head)
    size += len(head)
    keep: list[bytes] | None = [head] if member.name == MANIFEST_NAME else None
    copy_fd = None
    copy_path = None
    if spool is not None and keep is None:
        copy_fd, copy_path = spool.create(member)
    elif head == SQLITE_HEADER and checker is not None:
        copy_path = checker.new_path()
        try:
            copy_fd = os.open(copy_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise from_os_error(err, "copying an archive member") from err
    try:
        if copy_fd is not None:
            write_all(copy_fd, head)
        while True:
            chunk = src.read(COPY_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            if copy_fd is not None:
                write_all(copy_fd, chunk)
            if keep is not None:
                if size > MAX_MANIFEST_BYTES:
                    raise IntegrityError("manifest.json is implausibly large")
                keep.append(chunk)
    except OSError as err:
        raise from_os_error(err, "copying an archive member") from err
    finally:
        if copy_fd is not None:
            os.close(copy_fd)
    if spool is not None and copy_path is not None:
        spool.written(copy_path)
    if copy_path is not None and checker is not None and head == SQLITE_HEADER:
        checker.submit(copy_path, member.name)
    seen = _Seen("file", size=size, sha256=digest.hexdigest(), mode=member.mode)
    return seen, b"".join(keep) if keep is not None else None


def parse_manifest(data: bytes) -> Manifest:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise IntegrityError(f"manifest.json is not valid JSON: {err}") from err
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise IntegrityError("manifest.json is not a backupkit manifest")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise IntegrityError(
            f"archive format_version {version} is newer than this backupkit understands "
            f"({FORMAT_VERSION}): upgrade backupkit to verify or restore it"
        )
    try:
        return Manifest.model_validate(raw)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IntegrityError(f"manifest.json is malformed at {where}: {first['msg']}") from err


def scan_archive(
    archive: Path,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    check_databases: bool = True,
    spool: Spool | None = None,
) -> tuple[Manifest, list[str], dict[str, DatabaseCheck], int]:
    """The streaming pass. Raises IntegrityError for defects that stop reading; returns the
    manifest, the defects found, the database checks and the number of members checked.

    `check_databases=False` skips opening the databases: only for a caller that has already run
    the same checks on bytes with the same sha256. With a `spool`, every regular member is kept
    in it and databases are checked there, in place (restore reads the archive once).
    """
    if spool is not None:
        return _scan(archive, spool.root, workers, progress, spool)
    if not check_databases:
        return _scan(archive, None, workers, progress)
    # Database copies go to a private, locked directory in the system temp dir; one left by a
    # verify that was killed (SIGKILL skips every cleanup) is removed by the next verify.
    scratch = Path(tempfile.gettempdir())
    remove_stale_staging(scratch, VERIFY_PREFIX)
    with staging_dir(scratch, str(os.getpid()), VERIFY_PREFIX) as tmp:
        return _scan(archive, tmp, workers, progress)


def _scan(
    archive: Path,
    tmp: Path | None,
    workers: int | None,
    progress: ProgressCallback | None,
    spool: Spool | None = None,
) -> tuple[Manifest, list[str], dict[str, DatabaseCheck], int]:
    defects: list[str] = []
    seen: dict[str, _Seen] = {}
    manifest_bytes: bytes | None = None
    checker = (
        _Checker(tmp, workers or (os.cpu_count() or 1), keep=spool is not None)
        if tmp is not None
        else None
    )
    from .archive_read import iter_members  # local: keeps module import order acyclic

    try:
        stream = None
        for member, tar, stream in iter_members(archive):  # noqa: B007 - used after the loop
            name = member.name
            bad = _name_defect(name)
            if bad:
                defects.append(bad)
            if name in seen or (name == MANIFEST_NAME and manifest_bytes is not None):
                defects.append(f"member {name!r} appears more than once")
            if member.isreg():
                record, data = _read_member(tar, member, checker, spool)
                if name == MANIFEST_NAME:
                    manifest_bytes = data
                    continue
                seen[name] = record
                emit(progress, "verify", len(seen), 0, name)
            elif member.isdir():
                seen[name] = _Seen("dir", mode=member.mode)
            elif member.issym():
                seen[name] = _Seen("symlink", linkname=member.linkname)
            else:
                kind = "hard link" if member.islnk() else "device, fifo or other special file"
                defects.append(f"member {name!r} is a {kind}, which an archive must never hold")
        if manifest_bytes is None:
            raise IntegrityError("archive has no manifest.json")
        manifest = parse_manifest(manifest_bytes)
        if manifest.sealed and stream is not None and not stream.sealed:
            defects.append("archive's seal is missing: the file was cut short or altered")
        checks = checker.finish() if checker is not None else {}
    except tarfile.TarError as err:  # raised while reading a member's data in the loop body
        raise IntegrityError(f"archive is damaged: tar says {err}") from err
    finally:
        if checker is not None:
            checker.close()
    defects += _compare(manifest, seen, checks, checked=checker is not None)
    return manifest, defects, checks, len(seen)


def database_defects(db: DatabaseEntry, check: DatabaseCheck) -> list[str]:
    """What is wrong with one database, judged against its manifest entry."""
    name = db.archive_path
    if check.integrity != "ok":
        # What a damaged database says about itself is not evidence: one defect, not three.
        return [f"{name}: integrity_check failed: {check.integrity}"]
    defects = []
    if check.foreign_keys != "ok":
        defects.append(f"{name}: {check.foreign_keys}")
    if db.role in ("global", "agent") and check.role is not None and check.role != db.role:
        defects.append(f"{name}: schema_meta says role {check.role}, manifest {db.role}")
    if db.role == "agent" and check.agent_id is not None and db.agent_id != check.agent_id:
        defects.append(f"{name}: schema_meta says agent {check.agent_id}, manifest {db.agent_id}")
    if db.user_version is not None and check.user_version != db.user_version:
        defects.append(f"{name}: user_version {check.user_version}, manifest {db.user_version}")
    return defects


def _compare(
    manifest: Manifest, seen: dict[str, _Seen], checks: dict[str, DatabaseCheck], *, checked: bool
) -> list[str]:
    defects: list[str] = []
    listed: set[str] = set()

    def expect_file(name: str, size: int, sha: str) -> None:
        listed.add(name)
        got = seen.get(name)
        if got is None or got.kind != "file":
            defects.append(f"{name}: listed in the manifest but missing from the archive")
        elif got.size != size:
            defects.append(f"{name}: size {got.size} does not match the manifest's {size}")
        elif got.sha256 != sha:
            defects.append(f"{name}: sha256 does not match the manifest")

    for db in manifest.databases:
        expect_file(db.archive_path, db.size_bytes, db.sha256)
        if db.integrity != "ok":
            defects.append(f"{db.archive_path}: not proven at backup time: {db.integrity}")
            continue
        if not checked:
            continue
        check = checks.get(db.archive_path)
        if check is None:
            if db.archive_path in seen:
                defects.append(f"{db.archive_path}: is not a SQLite database")
            continue
        defects += database_defects(db, check)
    for f in manifest.files:
        expect_file(f.archive_path, f.size_bytes, f.sha256)
    for link in manifest.links:
        listed.add(link.archive_path)
        got = seen.get(link.archive_path)
        if got is None or got.kind != "symlink" or got.linkname != link.target:
            defects.append(
                f"{link.archive_path}: symlink missing or pointing elsewhere than listed"
            )
    for d in manifest.directories:
        listed.add(d.archive_path)
        got = seen.get(d.archive_path)
        if got is None or got.kind != "dir":
            defects.append(f"{d.archive_path}: directory listed in the manifest is missing")
    for name in seen:
        if name not in listed:
            defects.append(f"{name}: in the archive but not in the manifest")
    links = {n for n, s in seen.items() if s.kind == "symlink"}
    for name in seen:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                defects.append(f"{name}: lies under the symlink {'/'.join(parts[:i])}")
                break
    return defects


def verify_archive(
    archive: str | os.PathLike[str],
    *,
    state_dir: str | os.PathLike[str] | None = None,
    record: bool = True,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    check_databases: bool = True,
) -> VerifyReport:
    """Prove `archive` restorable. Returns a report (`.ok`); raises `InputError` (exit 2) for a
    missing file or one that is not a backupkit archive. Damage that stops reading is reported
    as a defect, not raised."""
    path = Path(os.path.abspath(archive))
    started = time.monotonic()
    manifest: Manifest | None = None
    checks: dict[str, DatabaseCheck] = {}
    count = 0
    try:
        manifest, defects, checks, count = scan_archive(
            path, workers=workers, progress=progress, check_databases=check_databases
        )
    except IntegrityError as err:
        defects = [str(err)]
    report = VerifyReport(
        archive=path,
        ok=not defects,
        defects=defects,
        manifest=manifest,
        databases=[c.to_dict() for c in checks.values()],
        files_checked=count,
    )
    if record:
        record_verify(report, state_dir)
    report.seconds = time.monotonic() - started
    return report


def record_verify(report: VerifyReport, state_dir: str | os.PathLike[str] | None) -> None:
    """Write the verify result into the ledger of the state the archive came from, if it is here."""
    if state_dir is not None:
        target = resolve_state_dir(state_dir)
    elif report.manifest is not None and Path(report.manifest.state_dir).is_dir():
        target = Path(report.manifest.state_dir)
    else:
        report.warnings.append("no state dir on this machine: verify result not recorded")
        return
    now = datetime.now(UTC)
    backup_id = report.manifest.backup_id if report.manifest else "unknown"
    ms = int(now.timestamp() * 1000)
    body = {
        "kind": "verify",
        "backup_id": backup_id,
        "ok": report.ok,
        "defects": report.defects,
        "databases": report.databases,
    }
    warning = record_run(
        layout_for(target).global_db,
        Run(
            id=f"verify:{backup_id}:{ms}",
            created_at=ms,
            archive_path=os.fspath(report.archive),
            status="verify-ok" if report.ok else "verify-failed",
            manifest_json=orjson.dumps(body).decode(),
        ),
    )
    report.recorded = warning is None
    if warning:
        report.warnings.append(warning)
