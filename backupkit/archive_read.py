"""Read an archive as one stream, checking the container as it goes.

The zstd frame is decompressed incrementally so that three things are checked, not assumed:
the frame's content checksum (zstd checks it at the frame's end), that the frame ends at all
(a truncated file must not pass because the tar part happened to look complete), and that nothing
follows it.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import zstandard

from .errors import InputError, IntegrityError, from_os_error

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
READ_CHUNK = 1 << 20
# tarfile reads ahead in records of 10 KiB: keep more than that to check what follows its end.
TAIL_KEEP = 64 << 10


class ZstdFrameReader:
    """A read-only file object over the decompressed bytes of exactly one zstd frame."""

    def __init__(self, fh) -> None:  # type: ignore[no-untyped-def]
        self._fh = fh
        self._dobj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=False)
        self._buf = b""
        self._pos = 0
        self._eof = False
        self.compressed_read = 0
        self.position = 0  # decompressed bytes handed out so far
        self._tail = bytearray()  # the last TAIL_KEEP of them

    def _fill(self) -> None:
        while self._pos >= len(self._buf) and not self._eof:
            chunk = self._fh.read(READ_CHUNK)
            self.compressed_read += len(chunk)
            if not chunk:
                if not self._dobj.eof:
                    raise IntegrityError("archive is truncated: the zstd frame does not end")
                self._eof = True
                return
            if self._dobj.eof:
                raise IntegrityError("archive has trailing data after its zstd frame")
            try:
                self._buf = self._dobj.decompress(chunk)
                self._pos = 0
            except zstandard.ZstdError as err:
                raise IntegrityError(f"archive is corrupt: zstd says {err}") from err
            if self._dobj.eof and self._dobj.unused_data:
                raise IntegrityError("archive has trailing data after its zstd frame")

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while True:
                part = self.read(READ_CHUNK)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        self._fill()
        out = self._buf[self._pos : self._pos + size]
        self._pos += len(out)
        self.position += len(out)
        if len(out) >= TAIL_KEEP:
            self._tail = bytearray(out[-TAIL_KEEP:])
        else:
            self._tail += out
            if len(self._tail) > 2 * TAIL_KEEP:
                del self._tail[:-TAIL_KEEP]
        return out

    def check_end(self, tar_end: int) -> None:
        """Everything after the tar's last member must be zeros (its end marker and padding):
        anything else is a corrupt header that made tar stop early, or data hidden after it."""
        handed = self.position - tar_end
        if handed > len(self._tail):
            raise IntegrityError("archive is damaged: tar stopped long before the stream ended")
        if handed > 0 and any(self._tail[len(self._tail) - handed :]):
            raise IntegrityError(
                f"archive is damaged: non-zero data after the tar end at offset {tar_end} "
                "(a corrupt tar header, or data hidden after the end marker)"
            )
        while True:
            chunk = self.read(READ_CHUNK)
            if not chunk:
                return
            if any(chunk):
                raise IntegrityError(
                    f"archive is damaged: non-zero data after the tar end at offset {tar_end} "
                    "(a corrupt tar header, or data hidden after the end marker)"
                )
            self._tail.clear()


def open_archive_file(path: Path):  # type: ignore[no-untyped-def]
    """Open an archive for reading; exit 2 when it is missing or plainly not one of ours."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise InputError(f"archive {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not an archive") from None
    except OSError as err:
        raise from_os_error(err, "opening the archive") from err
    head = fh.read(4)
    if head != ZSTD_MAGIC:
        fh.close()
        what = "an empty file" if not head else "not a zstd file"
        raise InputError(f"{path} is not a backupkit archive ({what})")
    fh.seek(0)
    return fh


def iter_members(path: Path) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile, ZstdFrameReader]]:
    """Yield each tar member in order; after the last, the frame's end is checked."""
    fh = open_archive_file(path)
    with fh:
        stream = ZstdFrameReader(fh)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    yield member, tar, stream
                tar_end = tar.offset
        except tarfile.ReadError as err:
            if stream.compressed_read <= 4 + READ_CHUNK and "empty" in str(err):
                raise InputError(f"{path} is not a backupkit archive (no tar inside)") from err
            raise IntegrityError(f"archive is damaged: tar says {err}") from err
        except tarfile.TarError as err:
            raise IntegrityError(f"archive is damaged: tar says {err}") from err
        stream.check_end(tar_end)


def archive_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
