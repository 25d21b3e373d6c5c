"""The placement engine: how files, directories and links take their places, for `--target`
and `--in-place` alike.

- A file is renamed into place from where it was proven (spool or staging), never written
  through anything that stands at its name; two members for one place, or a file where a
  directory must be, are the archive's defect (exit 1), not the machine's.
- Symlinks go in last of all, so nothing is ever written through a link the archive planted.
- Directories are made durable (every one synced, deepest first) before any mode is applied,
  since a mode without owner read would refuse the sync; modes then go on deepest first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import IntegrityError, from_os_error
from ..fsutil import fsync_dir, iter_dirs


def _placement_error(name: str, err: OSError) -> Exception:
    if isinstance(err, FileExistsError | NotADirectoryError | IsADirectoryError):
        return IntegrityError(f"{name}: cannot be placed: {err.strerror}")
    return from_os_error(err, "restoring a file")


def place_file(name: str, src: Path, dest: Path, mode: int) -> None:
    """Move a proven file from `src` to `dest`, which must not exist yet."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(dest):
            raise IntegrityError(f"{name}: restored twice")
        os.rename(src, dest)
        os.chmod(dest, mode)
    except OSError as err:
        raise _placement_error(name, err) from err


def place_dir(name: str, dest: Path) -> None:
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _placement_error(name, err) from err


def place_link(name: str, target: str, dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest)
    except OSError as err:
        raise _placement_error(name, err) from err


def take_owner(path: Path, uid: int, gid: int) -> None:
    """Give a restored entry the owner and group the archive records, when running as root: a
    restore by root must never hand the gateway's files to root. An unprivileged restore owns
    what it writes, as any user's copy would."""
    if os.geteuid() != 0:
        return
    try:
        os.lchown(path, uid, gid)
    except OSError as err:
        raise from_os_error(err, "restoring ownership") from err


def seal_directories(root: Path, modes: Iterable[tuple[Path, int]]) -> None:
    """Sync every directory under `root`, then apply `modes` (deepest first)."""
    try:
        for d in sorted(iter_dirs(root), key=lambda d: len(d.parts), reverse=True):
            fsync_dir(d)
        for path, mode in sorted(modes, key=lambda pm: len(pm[0].parts), reverse=True):
            os.chmod(path, mode)
    except OSError as err:
        raise from_os_error(err, "restoring directories") from err


def first_missing(path: Path) -> Path | None:
    """The outermost directory that creating `path` would create, or None if it exists."""
    missing = None
    while not os.path.lexists(path):
        missing = path
        if path.parent == path:
            break
        path = path.parent
    return missing
