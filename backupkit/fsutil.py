"""File-system primitives: durable renames and private staging directories.

A staging directory lives in the output directory (same file system, so the finished archive is
published by one rename) and is held with `flock` on its own directory descriptor for as long as
its run lives. A later run removes every staging directory whose lock it can take: the owner is
gone, whatever killed it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import from_os_error

STAGING_PREFIX = ".backupkit-staging-"


def write_all(fd: int, data: bytes) -> None:
    """Write every byte: a write may be short (a file size limit, a signal); the next one then
    writes the rest or raises the error."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: Path) -> None:
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def fsync_file(path: Path) -> None:
    _fsync(path, os.O_RDONLY | os.O_CLOEXEC)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """Rename a finished, synced file into place and make the rename durable."""
    if final.exists():
        raise FileExistsError(17, "refusing to replace an existing archive", os.fspath(final))
    os.rename(tmp, final)
    fsync_dir(final.parent)


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) if missing; a directory we create is 0700."""
    if path.is_dir():
        return
    path.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def remove_stale_staging(output_dir: Path, prefix: str = STAGING_PREFIX) -> list[Path]:
    """Remove staging directories left by runs that died; return what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(output_dir))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            if _try_lock(fd):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def staging_dir(output_dir: Path, tag: str, prefix: str = STAGING_PREFIX) -> Iterator[Path]:
    """A private (0700) staging directory in `output_dir`, locked while in use, always removed."""
    for _attempt in range(5):
        path = output_dir / f"{prefix}{tag}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o700)
            os.chmod(path, 0o700)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileExistsError:
            continue
        except FileNotFoundError:
            continue  # a concurrent cleaner took it between mkdir and open
        except OSError as err:
            raise from_os_error(err, "creating the staging directory") from err
        # Another run's cleaner may have locked or removed it between mkdir and open: only a
        # directory we hold and that still stands at its name is ours.
        if not _try_lock(fd) or not _same_inode(fd, path):
            os.close(fd)
            continue
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)
        return
    raise from_os_error(OSError(17, "could not create a staging directory"), "staging")


def _same_inode(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
