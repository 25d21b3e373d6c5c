"""Write the archive: one POSIX (pax) tar stream, compressed by zstd with content checksums.

Each member's sha256 is computed while its bytes stream into the archive, so what the manifest
says is exactly what was written, and no file is read twice. The archive is written to a
temporary name, fsynced, and only then published under its final name by the caller.

With recipients, the same bytes (zstd frame and seal) go through crypt.py's encrypting sink on
their way to the file, so the file holds them age-encrypted and never a plaintext byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from ..errors import from_os_error
from .crypt import CipherWritten, EncryptingSink, Recipients
from .format import ARCHIVE_MODE, seal_bytes

COPY_CHUNK = 1 << 20
# Chunks waiting for the compressor: enough to ride out a slow read, little memory.
QUEUE_CHUNKS = 8
COMPRESSION_LEVELS = {"fast": 1, "default": 3, "small": 9}


@dataclass(frozen=True)
class Written:
    size_bytes: int
    sha256: str
    changed: bool = False  # the file changed while it was read: the member holds what was read


@dataclass(frozen=True)
class Finished:
    """What `finish` wrote, for a read-back proof: the archive's size, how many tar bytes went
    into zstd, the sha256 of the compressed bytes (the seal) and, for an encrypted archive,
    what the encrypting sink wrote."""

    size_bytes: int
    stream_bytes: int
    seal: bytes
    cipher: CipherWritten | None = None


class _CompressorThread:
    """The file object tarfile writes to. It counts bytes (tarfile asks `tell()`) and hands them
    to one thread that runs single-threaded zstd.

    Measured on 2 cores (scripts/bench --breakdown), zstd's own worker pool (`threads=-1`) costs
    about 20 % more CPU than one compressing thread, and holds about 65 MB more buffers. One
    thread that owns the compressor, fed through a short queue, keeps compression off the
    packing thread (python-zstandard releases the GIL while it compresses) without either cost.
    A failure in the thread, such as a full disk, is raised at the next write or at close.
    """

    def __init__(self, compressor: zstandard.ZstdCompressionWriter) -> None:
        self._zstd = compressor
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._pos = 0
        self._thread = threading.Thread(target=self._run, name="compress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead consumer
            try:
                self._zstd.write(data)
            except BaseException as err:  # reported to the producer, who decides
                self._error = err

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: bytes) -> int:
        self._raise_if_failed()
        self._queue.put(bytes(data))
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        """Wait for every queued byte to be compressed, then end the zstd frame."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()
        # zstandard's stub leaves ZstdCompressionWriter.close() unannotated.
        self._zstd.close()  # type: ignore[no-untyped-call]

    def abandon(self) -> None:
        self._error = self._error or RuntimeError("abandoned")
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=5)


class _HashingSink:
    """Between zstd and the file: hashes every compressed byte, for the archive's seal."""

    def __init__(self, raw: BinaryIO | EncryptingSink) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()


class _HashingReader:
    """Feeds tarfile exactly the `size` bytes its header declared, and hashes them on the way.

    A file that shrinks while it is read cannot take back the header already written: the
    missing tail is stored as zeros and the read is marked `short`, so the member stays exactly
    as long as declared and its hash is the hash of the bytes stored."""

    def __init__(
        self, fh: BinaryIO, size: int, on_bytes: Callable[[int], None] | None = None
    ) -> None:
        self._fh = fh
        self._left = size
        self._done = 0
        self._on_bytes = on_bytes
        self.short = False
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._fh.read(want) if want else b""
        if len(data) < want:
            self.short = True
            data += bytes(want - len(data))
        self._left -= len(data)
        self._done += len(data)
        self.digest.update(data)
        if self._on_bytes is not None and data:
            self._on_bytes(self._done)
        return data


class ArchiveWriter:
    """Streams members into `<path>` (created 0600, never replacing a file), age-encrypted to
    `recipients` when given."""

    def __init__(
        self,
        path: Path,
        *,
        level: int = 3,
        threads: int = 0,
        recipients: Recipients | None = None,
    ) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, ARCHIVE_MODE)
            os.fchmod(fd, ARCHIVE_MODE)  # whatever the umask said
        except OSError as err:
            raise from_os_error(err, "creating the archive") from err
        self._raw = os.fdopen(fd, "wb", buffering=COPY_CHUNK)
        self._cipher = EncryptingSink(self._raw, recipients) if recipients else None
        self._out: BinaryIO | EncryptingSink = self._cipher or self._raw
        self._sealer = _HashingSink(self._out)
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=threads)
        # zstandard's stub asks for IO[bytes]; the stream writer only calls write() and flush().
        self._zstd = _CompressorThread(cctx.stream_writer(self._sealer, closefd=False))  # type: ignore[arg-type]
        # typeshed wants a full file object; in "w" mode tarfile only calls write() and tell().
        self._tar = tarfile.open(  # type: ignore[call-overload]  # noqa: SIM115 - closed by finish()
            fileobj=self._zstd,
            mode="w",
            format=tarfile.PAX_FORMAT,
        )
        self._tar.copybufsize = COPY_CHUNK
        self._closed = False

    def _info(
        self, name: str, st: os.stat_result | None, *, mode: int, mtime: float
    ) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.mode = mode
        info.mtime = int(mtime)
        if st is not None:
            info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        return info

    def add_file(
        self,
        src: Path,
        name: str,
        *,
        mode: int | None = None,
        owner: tuple[int, int] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Written:
        """Stream a regular file in; never follows a symlink put in its place. Raises
        FileNotFoundError, untouched, for a file that is gone: the caller decides what a
        vanished file means. `on_bytes` hears how many bytes of it were read so far."""
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as err:
            raise from_os_error(err, "reading a file to archive") from err
        with open(fd, "rb", buffering=0) as fh:
            st = os.fstat(fh.fileno())
            info = self._info(
                name, st, mode=mode if mode is not None else st.st_mode & 0o7777, mtime=st.st_mtime
            )
            info.size = st.st_size
            if owner is not None:  # a snapshot stands for the live file: record its owner
                info.uid, info.gid = owner
            reader = _HashingReader(fh, st.st_size, on_bytes)
            try:
                self._tar.addfile(info, reader)
                after = os.fstat(fh.fileno())
            except OSError as err:
                raise from_os_error(err, "writing the archive") from err
        changed = reader.short or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns)
        return Written(size_bytes=info.size, sha256=reader.digest.hexdigest(), changed=changed)

    def add_bytes(self, name: str, data: bytes, *, mode: int = 0o644, mtime: float) -> Written:
        info = self._info(name, None, mode=mode, mtime=mtime)
        info.size = len(data)
        try:
            self._tar.addfile(info, io.BytesIO(data))
        except OSError as err:
            raise from_os_error(err, "writing the archive") from err
        return Written(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())

    def add_symlink(self, name: str, target: str, st: os.stat_result) -> None:
        info = self._info(name, st, mode=0o777, mtime=st.st_mtime)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        self._add_meta(info)

    def add_dir(self, name: str, st: os.stat_result, mode: int) -> None:
        info = self._info(name, st, mode=mode, mtime=st.st_mtime)
        info.type = tarfile.DIRTYPE
        self._add_meta(info)

    def _add_meta(self, info: tarfile.TarInfo) -> None:
        try:
            self._tar.addfile(info)
        except OSError as err:
            raise from_os_error(err, "writing the archive") from err

    def finish(self) -> Finished:
        """End the tar stream and the zstd frame, seal and fsync the file."""
        try:
            self._tar.close()
            stream_bytes = self._zstd.tell()
            self._zstd.close()
            seal = self._sealer.digest.digest()
            self._out.write(seal_bytes(seal))
            cipher = self._cipher.close() if self._cipher is not None else None
            self._raw.flush()
            os.fsync(self._raw.fileno())
            size = os.fstat(self._raw.fileno()).st_size
            self._raw.close()
        except OSError as err:
            raise from_os_error(err, "writing the archive") from err
        self._closed = True
        return Finished(size_bytes=size, stream_bytes=stream_bytes, seal=seal, cipher=cipher)

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._zstd.abandon()
        if self._cipher is not None:
            self._cipher.abort()
        with contextlib.suppress(OSError, ValueError):
            self._raw.close()
