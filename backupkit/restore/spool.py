"""Restore's single pass: where every member's bytes wait while the archive is proven.

Every regular member goes to a file of its own under a private directory on the restore
target's file system as it streams by, so the archive is read once. Nothing is trusted until the
whole archive has been checked against its manifest; the caller then renames the files into
place (restore/place.py), or removes the directory.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..errors import EnvironmentFault, from_os_error
from ..fsutil import fsync_file

# Free space a restore leaves untouched on the target's file system (or 1 % of it, if smaller).
SPOOL_RESERVE_BYTES = 64 << 20


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
