"""Read an archive as one stream, checking the container as it goes.

The zstd frame is decompressed incrementally so that three things are checked, not assumed:
the frame's content checksum (zstd checks it at the frame's end), that the frame ends at all
(a truncated file must not pass because the tar part happened to look complete), and that nothing
follows it.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import zstandard

from .errors import InputError, IntegrityError, from_os_error

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
READ_CHUNK = 1 << 20
# tarfile reads ahead in records of 10 KiB: keep more than that to check what follows its end.
TAIL_KEEP = 64 << 10
# The seal: a zstd skippable frame (magic 0x184D2A50), an 8-byte tag and a sha256.
SEAL_MAGIC = b"\x50\x2a\x4d\x18"
SEAL_TAG = b"BKSEAL01"
SEAL_SIZE = 4 + 4 + len(SEAL_TAG) + 32


class ZstdFrameReader:
    """A read-only file object over the decompressed bytes of exactly one zstd frame."""

    def __init__(self, fh, *, limit: int | None = None, hashed: bool = True) -> None:  # type: ignore[no-untyped-def]
        self._fh = fh
        self._hashed = hashed
        self._left = limit  # compressed bytes that belong to the frame (the seal follows)
        self.sealed = limit is not None
        self.digest = hashlib.sha256()  # of the compressed bytes read
        self._dobj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=False)
        self._buf = b""
        self._pos = 0
        self._eof = False
        self.compressed_read = 0
        self.position = 0  # decompressed bytes handed out so far
        self._tail = bytearray()  # the last TAIL_KEEP of them

    def _fill(self) -> None:
        while self._pos >= len(self._buf) and not self._eof:
            want = READ_CHUNK if self._left is None else min(READ_CHUNK, self._left)
            chunk = self._fh.read(want) if want else b""
            if self._left is not None:
                self._left -= len(chunk)
            if self._hashed:
                self.digest.update(chunk)
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
                rest = self._dobj.unused_data
                head = SEAL_MAGIC + struct.pack("<I", len(SEAL_TAG) + 32) + SEAL_TAG
                cut = min(len(rest), len(head))
                if len(rest) < SEAL_SIZE and rest[:cut] == head[:cut]:
                    raise IntegrityError("archive is truncated: the seal after its frame is cut")
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

    def drain(self) -> None:
        """Decode to the frame's end without handing the bytes out (a read-back proof)."""
        while True:
            self._pos = len(self._buf)
            self._fill()
            if self._eof:
                return
            self.position += len(self._buf)

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


def write_seal(digest: bytes) -> bytes:
    """The seal backup appends: a zstd skippable frame (stock zstd skips it) holding the sha256 of
    every compressed byte before it. It catches what nothing inside the frame can: a flipped bit
    zstd never reads, which leaves the decoded stream, and so every content check, unchanged.
    Like every unkeyed hash it proves against accidents, not against a forger."""
    return SEAL_MAGIC + struct.pack("<I", len(SEAL_TAG) + 32) + SEAL_TAG + digest


def read_seal(fh) -> tuple[int | None, bytes | None]:  # type: ignore[no-untyped-def]
    """(length of the frame part, the sealed sha256), or (None, None) for an unsealed archive."""
    size = os.fstat(fh.fileno()).st_size
    if size < SEAL_SIZE + 4:
        return None, None
    fh.seek(size - SEAL_SIZE)
    tail = fh.read(SEAL_SIZE)
    fh.seek(0)
    if tail[:4] != SEAL_MAGIC:
        return None, None
    if tail[4:8] != struct.pack("<I", len(SEAL_TAG) + 32) or tail[8:16] != SEAL_TAG:
        raise IntegrityError("archive has trailing data after its zstd frame (a damaged seal?)")
    return size - SEAL_SIZE, tail[16:]


def read_back(path: Path) -> tuple[int, bytes, bytes | None]:
    """Decode the archive's whole frame without parsing what is inside: zstd checks its content
    checksum at the frame's end. Returns (decoded bytes, sha256 of the compressed bytes before
    the seal, the sealed sha256 or None)."""
    fh = open_archive_file(path)
    with fh:
        frame_size, sealed = read_seal(fh)
        # Hash the compressed bytes on another core while this one decodes them.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seal") as pool:
            digest = pool.submit(_sha256_prefix, fh.fileno(), frame_size)
            stream = ZstdFrameReader(fh, limit=frame_size, hashed=False)
            stream.drain()
            return stream.position, digest.result(), sealed


def _sha256_prefix(fd: int, size: int | None) -> bytes:
    """sha256 of the first `size` bytes (all, if None) of an open file, read with pread so it
    shares the descriptor, and so the file, that the decoder reads."""
    digest = hashlib.sha256()
    offset = 0
    try:
        while size is None or offset < size:
            want = READ_CHUNK if size is None else min(READ_CHUNK, size - offset)
            chunk = os.pread(fd, want, offset)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
    except OSError as err:
        raise from_os_error(err, "reading the archive back") from err
    return digest.digest()


def iter_members(path: Path) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile, ZstdFrameReader]]:
    """Yield each tar member in order; after the last, the frame's end and the seal are checked."""
    fh = open_archive_file(path)
    with fh:
        frame_size, sealed = read_seal(fh)
        stream = ZstdFrameReader(fh, limit=frame_size)
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
        if sealed is not None and stream.digest.digest() != sealed:
            raise IntegrityError(
                "archive bytes differ from the seal written at backup time (sha256 mismatch)"
            )
