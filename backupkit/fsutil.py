"""File-system primitives: whole writes, atomic files, no-replace publishing, staging dirs.

Every durable write in backupkit goes through here: `atomic_write` (temp file, write every byte,
fsync, rename, fsync the directory) and `publish` (a finished file appears under its final name
only if nothing stands there, and never replaces what does).

A staging directory lives in the output directory (same file system, so the finished archive is
published by one link) and is held with `flock` on its own directory descriptor for as long as
its run lives. A later run removes every staging directory whose lock it can take: the owner is
gone, whatever killed it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import from_os_error

STAGING_PREFIX = ".backupkit-staging-"
# File systems without hard links (vfat, some FUSE mounts) say so with one of these.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK}


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte: a write may be short (a file size limit, a signal); the next one then
    writes the rest or raises the error."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_or_skip_zeros(fd: int, data: bytes) -> None:
    """Write `data`, or seek past it when it is all zeros, so a restored sparse file (a VM
    image, a preallocated log) stays sparse. The caller sets the final length with ftruncate,
    since a file that ends in a hole has no byte written there."""
    if data and data.count(0) == len(data):
        os.lseek(fd, len(data), os.SEEK_CUR)
    else:
        write_all(fd, data)


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


def _synced_temp(path: Path, data: bytes, mode: int, prefix: str) -> Path:
    """`data` in a new, synced file beside `path` (same directory, so one rename or link gives
    it its name), mode `mode` whatever the umask; the temporary is gone again if this fails."""
    tmp = path.with_name(f"{prefix}{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    # An interrupt between the open above and this try can still leave `tmp` (Python checks
    # for signals between any two steps): callers that write under a lock sweep such leftovers.
    try:
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a crash leaves either the old file or the new one."""
    tmp = _synced_temp(path, data, mode, "")
    try:
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def write_new(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write a new file that appears whole under its name or not at all, and never replaces
    one: a synced temporary file, published with `publish`. Raises FileExistsError when
    `path` exists."""
    tmp = _synced_temp(path, data, mode, ".")
    try:
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def publish(tmp: Path, final: Path) -> None:
    """Give a finished, synced file its final name, never replacing a file already there.

    A hard link is created or fails with EEXIST in one step; checking for the name and then
    renaming would let a file that appeared in between be overwritten."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise FileExistsError(
            errno.EEXIST, "refusing to replace an existing file", os.fspath(final)
        ) from None
    except OSError as err:
        if err.errno not in _NO_LINKS:
            raise
        # No hard links here: the narrow check-then-rename is the best this file system allows.
        if os.path.lexists(final):
            raise FileExistsError(
                errno.EEXIST, "refusing to replace an existing file", os.fspath(final)
            ) from None
        os.rename(tmp, final)
    else:
        os.unlink(tmp)
    fsync_dir(final.parent)


def is_within(path: Path | str, root: Path | str) -> bool:
    """Is `path` `root` or below it, once both are resolved (symlinks followed)?"""
    return lexically_within(os.path.realpath(path), os.path.realpath(root))


def lexically_within(path: Path | str, root: Path | str) -> bool:
    """Is `path` `root` or below it, judged on the normalised names alone (no symlink is
    followed; for paths that may not exist yet)."""
    p = os.path.normpath(os.fspath(path))
    r = os.path.normpath(os.fspath(root))
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)


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


def iter_dirs(root: Path) -> list[Path]:
    """Every directory under `root` (itself included), found without following symlinks and
    without recursion: a tree thousands of levels deep is walked like a shallow one."""
    found = [root]
    stack = [root]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    path = Path(entry.path)
                    found.append(path)
                    stack.append(path)
    return found


def remove_tree(root: Path) -> None:
    """Remove `root` and everything below it, best effort and without recursion. Directories
    are opened for their owner first: a mode the tree was given may refuse the removal."""
    if not os.path.lexists(root):
        return
    if os.path.islink(root) or not os.path.isdir(root):
        with contextlib.suppress(OSError):
            os.unlink(root)
        return
    with contextlib.suppress(OSError):
        os.chmod(root, 0o700)
    try:
        dirs = _iter_dirs_opening(root)
    except OSError:
        dirs = [root]
    for directory in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _iter_dirs_opening(root: Path) -> list[Path]:
    found = [root]
    stack = [root]
    while stack:
        directory = stack.pop()
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    path = Path(entry.path)
                    with contextlib.suppress(OSError):
                        os.chmod(path, 0o700, follow_symlinks=False)
                    found.append(path)
                    stack.append(path)
    return found
