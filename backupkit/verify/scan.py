"""The streaming pass: read an archive once, checking each member as it goes by.

Every member passes the member policy; every regular member is hashed and counted. Database
members (anything that starts with the SQLite header) are copied to a private temporary file and
checked in worker threads while the stream goes on. With a `sink` (restore), every regular
member is kept in it instead, and databases are checked there, in place, so the archive is read
once. The manifest is the last member; the comparison with it is compare.py's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..archive.crypt import Identities
from ..archive.format import MANIFEST_NAME
from ..archive.manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from ..archive.policy import member_defect
from ..archive.reader import iter_members
from ..archive.source import ArchiveRef, archive_size
from ..errors import EnvironmentFault, IntegrityError, from_os_error
from ..fsutil import remove_stale_staging, staging_dir, write_all, write_or_skip_zeros
from ..progress import Meter, ProgressCallback
from ..sqlite.check import DatabaseCheck
from ..sqlite.connect import SQLITE_HEADER
from .checker import Checker
from .compare import Seen, compare

VERIFY_PREFIX = "backupkit-verify-"
COPY_CHUNK = 1 << 20


class MemberSink(Protocol):
    """Where restore keeps every regular member's bytes while the archive is being proven."""

    root: Path

    def create(self, member: tarfile.TarInfo) -> tuple[int, Path]: ...

    def written(self, path: Path) -> None: ...


@dataclass
class ScanResult:
    manifest: Manifest
    defects: list[str]
    checks: dict[str, DatabaseCheck] = field(default_factory=dict)
    members: int = 0
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)  # uid, gid of each member


def scan_archive(
    archive: ArchiveRef,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    check_databases: bool = True,
    sink: MemberSink | None = None,
    identities: Identities | None = None,
) -> ScanResult:
    """The streaming pass. Raises IntegrityError for defects that stop reading; returns the
    manifest, the defects found, the database checks and the number of members checked.

    `check_databases=False` skips opening the databases: only for a caller that checks the same
    bytes (matched by sha256) itself, where it places them. An encrypted archive is read
    through `identities`.
    """
    workers = workers or (os.cpu_count() or 1)
    if sink is not None:
        return _scan(archive, Checker(sink.root, workers, keep=True), progress, sink, identities)
    if not check_databases:
        return _scan(archive, None, progress, None, identities)
    # Database copies go to a private, locked directory in the system temp dir; one left by a
    # verify that was killed (SIGKILL skips every cleanup) is removed by the next verify.
    scratch = Path(tempfile.gettempdir())
    remove_stale_staging(scratch, VERIFY_PREFIX)
    with staging_dir(scratch, str(os.getpid()), VERIFY_PREFIX) as tmp:
        return _scan(archive, Checker(tmp, workers), progress, None, identities)


def _scan(
    archive: ArchiveRef,
    checker: Checker | None,
    progress: ProgressCallback | None,
    sink: MemberSink | None,
    identities: Identities | None,
) -> ScanResult:
    defects: list[str] = []
    seen: dict[str, Seen] = {}
    manifest_bytes: bytes | None = None
    meter = Meter(progress, "verify", archive_size(archive) if progress else 0)
    try:
        stream = None
        members = iter_members(archive, identities, meter.reached if meter.active else None)
        for member, tar, stream in members:
            name = member.name
            meter.reached(stream.compressed_read, name)
            bad = member_defect(member)
            if bad:
                defects.append(bad)
                if not (member.isreg() or member.isdir() or member.issym()):
                    continue
            if name in seen or (name == MANIFEST_NAME and manifest_bytes is not None):
                defects.append(f"member {name!r} appears more than once")
            if member.isreg():
                if name == MANIFEST_NAME:
                    manifest_bytes = _read_manifest_member(tar, member)
                    continue
                seen[name] = _read_member(tar, member, checker, sink)
            elif member.isdir():
                seen[name] = Seen("dir", mode=member.mode, owner=(member.uid, member.gid))
            else:
                seen[name] = Seen(
                    "symlink", linkname=member.linkname, owner=(member.uid, member.gid)
                )
        if manifest_bytes is None:
            raise IntegrityError("archive has no manifest.json")
        manifest = parse_manifest(manifest_bytes)
        if manifest.sealed and stream is not None and not stream.sealed:
            defects.append("archive's seal is missing: the file was cut short or altered")
        checks = checker.finish() if checker is not None else {}
        meter.finish()
    except tarfile.TarError as err:  # raised while reading a member's data in the loop body
        raise IntegrityError(f"archive is damaged: tar says {err}") from err
    finally:
        if checker is not None:
            checker.close()
    defects += compare(manifest, seen, checks, checked=checker is not None)
    owners = {name: seen_.owner for name, seen_ in seen.items()}
    return ScanResult(manifest, defects, checks, len(seen), owners)


# What verify leaves free in the temporary directory's file system (or 1 % of it, if smaller).
SCRATCH_RESERVE_BYTES = 64 << 20


def _room_for(tmp: Path, member: tarfile.TarInfo) -> None:
    """A database copy must fit in the temporary directory, keeping a reserve: refused before
    a byte of it is written (the copies in flight already hold their space)."""
    usage = shutil.disk_usage(tmp)
    room = usage.free - min(SCRATCH_RESERVE_BYTES, usage.total // 100)
    if member.size > room:
        raise EnvironmentFault(
            f"verify needs {member.size} bytes of temporary space to check {member.name}, but "
            f"{tmp.parent} has {max(room, 0)} free (keeping a reserve): set TMPDIR to a larger "
            "file system"
        )


def _read_manifest_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > MAX_MANIFEST_BYTES:
        raise IntegrityError("manifest.json is implausibly large")
    src = tar.extractfile(member)
    assert src is not None
    return src.read()


def _read_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    checker: Checker | None,
    sink: MemberSink | None,
) -> Seen:
    """Hash a regular member; copy it aside for checking if it is a database (or, for restore,
    keep every member in the sink)."""
    src = tar.extractfile(member)
    assert src is not None
    digest = hashlib.sha256()
    head = src.read(len(SQLITE_HEADER))
    digest.update(head)
    size = len(head)
    is_db = head == SQLITE_HEADER
    copy_fd = copy_path = None
    if sink is not None:
        copy_fd, copy_path = sink.create(member)
    elif is_db and checker is not None:
        _room_for(checker.tmp, member)
        copy_path = checker.new_path()
        try:
            copy_fd = os.open(copy_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise from_os_error(err, "copying an archive member") from err
    try:
        if copy_fd is not None:
            write_all(copy_fd, head)
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if copy_fd is not None:
                write_or_skip_zeros(copy_fd, chunk)
        if copy_fd is not None:
            os.ftruncate(copy_fd, size)
    except OSError as err:
        raise from_os_error(err, "copying an archive member") from err
    finally:
        if copy_fd is not None:
            os.close(copy_fd)
    if sink is not None and copy_path is not None:
        sink.written(copy_path)
    if copy_path is not None and checker is not None and is_db:
        checker.submit(copy_path, member.name)
    owner = (member.uid, member.gid)
    return Seen("file", size=size, sha256=digest.hexdigest(), mode=member.mode, owner=owner)
