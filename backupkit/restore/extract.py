"""Contained extraction: write chosen archive members to chosen paths, and nowhere else.

The caller maps each member name to the path it may be written to; a member not in that map is
read past, never written. Each file is created with O_EXCL|O_NOFOLLOW (so nothing that already
stands at the path, a symlink least of all, is written through), its bytes are counted against
the manifest's size as they arrive (a decompression bomb stops at the first byte too many) and
hashed, and a mismatch stops the extraction. Symlinks are created only after every file and
directory, so no member can be written through a link that the archive itself planted.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..archive.crypt import Identities
from ..archive.reader import iter_members
from ..archive.source import ArchiveRef, archive_size
from ..errors import IntegrityError, from_os_error
from ..fsutil import write_or_skip_zeros
from ..progress import Meter, ProgressCallback
from .place import place_dir, place_link, take_owner

CHUNK = 1 << 20


@dataclass(frozen=True)
class Placement:
    """Where one member goes, and what it must be."""

    path: Path
    kind: str  # file, dir, symlink
    mode: int = 0o644
    size_bytes: int = 0
    sha256: str = ""
    target: str = ""  # symlink text


def _write_file(src: IO[bytes], place: Placement, name: str) -> None:
    place.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(
            place.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as err:
        raise from_os_error(err, "restoring a file") from err
    digest = hashlib.sha256()
    written = 0
    try:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > place.size_bytes:
                raise IntegrityError(f"{name}: more bytes than the manifest's {place.size_bytes}")
            digest.update(chunk)
            write_or_skip_zeros(fd, chunk)
        os.ftruncate(fd, written)
        if written != place.size_bytes or digest.hexdigest() != place.sha256:
            raise IntegrityError(f"{name}: content does not match the manifest (archive changed?)")
        os.fchmod(fd, place.mode)
        os.fsync(fd)
    except OSError as err:
        raise from_os_error(err, "restoring a file") from err
    finally:
        os.close(fd)


def extract(
    archive: ArchiveRef,
    placements: dict[str, Placement],
    identities: Identities | None = None,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Write every placed member; return the paths written, in order (for rollback)."""
    written: list[Path] = []
    links: list[tuple[Placement, int, int]] = []
    seen: set[str] = set()
    meter = Meter(progress, "restore", archive_size(archive) if progress else 0)
    try:
        members = iter_members(archive, identities, meter.reached if meter.active else None)
        for member, tar, stream in members:
            meter.reached(stream.compressed_read, member.name)
            place = placements.get(member.name)
            if place is None:
                continue
            seen.add(member.name)
            if place.kind == "file":
                if not member.isreg():
                    raise IntegrityError(f"{member.name}: not a regular file in the archive")
                src = tar.extractfile(member)
                assert src is not None
                _write_file(src, place, member.name)
                take_owner(place.path, member.uid, member.gid)
                written.append(place.path)
            elif place.kind == "dir":
                place_dir(member.name, place.path)
                take_owner(place.path, member.uid, member.gid)
                written.append(place.path)
            elif place.kind == "symlink":
                if not member.issym() or member.linkname != place.target:
                    raise IntegrityError(f"{member.name}: symlink differs from the manifest")
                links.append((place, member.uid, member.gid))
        missing = set(placements) - seen
        if missing:
            raise IntegrityError(f"{sorted(missing)[0]}: missing from the archive")
        for place, uid, gid in links:
            place_link(os.fspath(place.path), place.target, place.path)
            take_owner(place.path, uid, gid)
            written.append(place.path)
        meter.finish()
    except BaseException:
        _remove_written(written)
        raise
    return written


def _remove_written(paths: list[Path]) -> None:
    for path in reversed(paths):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
        except OSError:
            pass
