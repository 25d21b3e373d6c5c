"""Where an archive's bytes come from: a local file, or an object in a bucket read as a stream.

The reader needs three things of a source, and no more, so that verify, show and restore read
a remote archive the way they read a local one (no local copy first, the same memory bound):
its size, a few bytes at a known offset (the first bytes say plain or encrypted; the last hold
the seal), and one front-to-back stream of its first N bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import BackupError, InputError, from_os_error
from ..offsite.url import RemoteObject, is_remote

ArchiveRef = Path | RemoteObject


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class ArchiveSource(Protocol):
    label: str  # the path or URL, for messages and the ledger

    def size(self) -> int: ...

    def read_at(self, offset: int, n: int) -> bytes: ...

    def stream(self, length: int | None) -> Readable:
        """The first `length` bytes (all, if None), front to back."""
        ...

    def close(self) -> None: ...


def as_ref(archive: str | os.PathLike[str] | RemoteObject) -> ArchiveRef:
    """An archive named by a path or an `s3://BUCKET/KEY` URL."""
    if isinstance(archive, RemoteObject):
        return archive
    if is_remote(archive):
        return RemoteObject.parse(os.fspath(archive))
    return Path(os.path.abspath(archive))


def label(archive: ArchiveRef) -> str:
    return str(archive)


class LocalSource:
    def __init__(self, path: Path) -> None:
        self.label = os.fspath(path)
        try:
            # O_NONBLOCK: opening a FIFO given as ARCHIVE must not wait for a writer.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise InputError(
                f"archive {path} does not exist: give a path, a backup id or `latest` "
                "(see `backupkit list`)"
            ) from None
        except OSError as err:
            raise from_os_error(err, "opening the archive") from err
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise InputError(
                    f"{path} is a directory, not an archive: name one archive file in it "
                    f"(see `backupkit list --output {path}`)"
                )
            raise InputError(
                f"{path} is not a regular file, so not an archive: give an archive file"
            )
        os.set_blocking(fd, True)
        self._fh = open(fd, "rb")  # noqa: SIM115 - closed by close()

    def size(self) -> int:
        return os.fstat(self._fh.fileno()).st_size

    def read_at(self, offset: int, n: int) -> bytes:
        return os.pread(self._fh.fileno(), n, offset)

    def stream(self, length: int | None) -> Readable:
        self._fh.seek(0)
        return self._fh

    def fileno(self) -> int:
        return self._fh.fileno()

    @property
    def file(self) -> BinaryIO:
        """The open file itself, for a reader that seeks (the backup's frame-by-frame proof)."""
        return self._fh

    def close(self) -> None:
        self._fh.close()


def open_source(archive: ArchiveRef) -> ArchiveSource:
    if isinstance(archive, RemoteObject):
        from ..offsite.source import RemoteSource

        return RemoteSource(archive)
    return LocalSource(archive)


def archive_size(archive: ArchiveRef) -> int:
    """Its size in bytes, for a progress total; 0 when it cannot be had (the reader that opens
    it next says why)."""
    try:
        src = open_source(archive)
    except (BackupError, OSError):
        return 0
    try:
        return src.size()
    finally:
        src.close()
