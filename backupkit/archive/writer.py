"""Write the archive: one POSIX (pax) tar stream, compressed by zstd with content checksums.

Each member's sha256 is computed while its bytes stream into the archive, so what the manifest
says is exactly what was written, and no file is read twice. The archive is written to a
temporary name, fsynced, and only then published under its final name by the caller.

A member can be given zstd frames of its own (`own_frames`): its tar header, data and padding
then start and end a frame, so a later archive can hold the very same compressed bytes. Such
bytes are copied in by `add_frames`, which proves them on the new file's disk before it keeps
them. Every frame's offset, length and sha256 is recorded (`frame`, `Finished.frames`); the
seal of a plain archive is built from those (format.py).

With recipients, the same bytes (zstd frame and seal) go through crypt.py's encrypting sink on
their way to the file, so the file holds them age-encrypted and never a plaintext byte.
"""

from __future__ import annotations

import contextlib
import errno
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
from .format import ARCHIVE_MODE, Frame, frames_digest, seal_bytes

COPY_CHUNK = 1 << 20
# Chunks waiting for the compressor: enough to ride out a slow read, little memory.
QUEUE_CHUNKS = 8
COMPRESSION_LEVELS = {"fast": 1, "default": 3, "small": 9}


@dataclass(frozen=True)
class Written:
    size_bytes: int
    sha256: str
    changed: bool = False  # the file changed while it was read: the member holds what was read
    frame: int | None = None  # with own_frames: the index of the member's frame (see `frame`)
    tar_bytes: int = 0  # header, data and padding: how much of the tar stream the member is


@dataclass(frozen=True)
class Finished:
    """What `finish` wrote, for a read-back proof: the archive's size, how many tar bytes went
    into zstd, the sha256 of the compressed bytes (the seal) and, for an encrypted archive,
    what the encrypting sink wrote."""

    size_bytes: int
    stream_bytes: int
    seal: bytes
    cipher: CipherWritten | None = None
    frames: tuple[Frame, ...] = ()  # every frame of a plain archive, in order
    copied: frozenset[int] = frozenset()  # indexes of the frames add_frames copied in
    copied_tar_bytes: int = 0  # how much of the tar stream those frames hold


class _CompressorThread:
    """The file object tarfile writes to. It counts bytes (tarfile asks `tell()`) and hands them
    to one thread that runs single-threaded zstd.

    Measured on 2 cores (scripts/bench --breakdown), zstd's own worker pool (`threads=-1`) costs
    about 20 % more CPU than one compressing thread, and holds about 65 MB more buffers. One
    thread that owns the compressor, fed through a short queue, keeps compression off the
    packing thread (python-zstandard releases the GIL while it compresses) without either cost.
    A failure in the thread, such as a full disk, is raised at the next write or at close.
    """

    def __init__(self, compressor: zstandard.ZstdCompressionWriter, sink: _SealingSink) -> None:
        self._zstd = compressor
        self._sink = sink
        self._queue: queue.Queue[bytes | threading.Event | _EndFrame | None] = queue.Queue(
            maxsize=QUEUE_CHUNKS
        )
        self._error: BaseException | None = None
        self._pos = 0
        self._unsynced = False  # anything queued since the last sync
        self._thread = threading.Thread(target=self._run, name="compress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                return
            if isinstance(data, threading.Event):
                data.set()  # everything before it is in the file
                continue
            if self._error is not None:
                continue  # drain, so the producer never blocks on a dead consumer
            try:
                if isinstance(data, _EndFrame):
                    self._zstd.flush(zstandard.FLUSH_FRAME)
                    self._sink.end_frame()
                else:
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
        self._unsynced = True
        return len(data)

    def tell(self) -> int:
        return self._pos

    def end_frame(self) -> None:
        """End the zstd frame here; the next byte starts a new one."""
        self._raise_if_failed()
        self._queue.put(_END_FRAME)
        self._unsynced = True

    def sync(self) -> None:
        """Wait until every byte queued so far is compressed and written to the sink."""
        if not self._unsynced:
            self._raise_if_failed()
            return
        self._unsynced = False
        done = threading.Event()
        self._queue.put(done)
        while not done.wait(0.5):
            if not self._thread.is_alive():
                break
        self._raise_if_failed()

    def skip(self, n: int) -> None:
        """`n` tar bytes went into the file without passing through here (copied frames)."""
        self._pos += n

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


class _EndFrame:
    """Queued after a member's bytes: end the zstd frame there."""


_END_FRAME = _EndFrame()


class _SealingSink:
    """Between zstd and the file: hashes every compressed byte for the archive's seal. A plain
    archive's bytes are hashed frame by frame (`frames`, a `BKSEAL02` seal); an encrypted
    archive's as one stream (`BKSEAL01`), since nothing is ever copied into one."""

    def __init__(self, raw: BinaryIO | EncryptingSink, *, per_frame: bool) -> None:
        self._raw = raw
        self._per_frame = per_frame
        self._hash = hashlib.sha256()
        self._start = 0
        self.offset = 0
        self.frames: list[Frame] = []

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.offset += len(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def end_frame(self) -> None:
        if self._per_frame:
            self.frames.append(Frame(self._start, self.offset - self._start, self._hash.digest()))
            self._hash = hashlib.sha256()
            self._start = self.offset

    def copied(self, frame: Frame) -> None:
        """A proven frame went into the file at the current offset, not through write()."""
        self.frames.append(frame)
        self.offset = self._start = frame.offset + frame.length

    def seal(self) -> bytes:
        if not self._per_frame:
            return seal_bytes(self._hash.digest(), "stream")
        self.end_frame()
        return seal_bytes(frames_digest([f.sha256 for f in self.frames]), "frames")


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
            # Read as well as written: frames copied in are hashed where they landed.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, ARCHIVE_MODE)
            os.fchmod(fd, ARCHIVE_MODE)  # whatever the umask said
        except OSError as err:
            raise from_os_error(err, "creating the archive") from err
        self._raw = os.fdopen(fd, "wb", buffering=COPY_CHUNK)
        self._cipher = EncryptingSink(self._raw, recipients) if recipients else None
        self._out: BinaryIO | EncryptingSink = self._cipher or self._raw
        self._sealer = _SealingSink(self._out, per_frame=self._cipher is None)
        cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=threads)
        # zstandard's stub asks for IO[bytes]; the stream writer only calls write() and flush().
        writer = cctx.stream_writer(self._sealer, closefd=False)  # type: ignore[arg-type]
        self._zstd = _CompressorThread(writer, self._sealer)
        self._frame_start = 0  # tar position where the current frame began
        self._frames_queued = 0
        self._copied: set[int] = set()
        self._copied_tar_bytes = 0
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
        own_frames: bool = False,
    ) -> Written:
        """Stream a regular file in; never follows a symlink put in its place. Raises
        FileNotFoundError, untouched, for a file that is gone: the caller decides what a
        vanished file means. `on_bytes` hears how many bytes of it were read so far. With
        `own_frames`, the member starts and ends a zstd frame (`Written.frame`)."""
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
                if own_frames:
                    self.end_frame()
                start = self._zstd.tell()
                self._tar.addfile(info, reader)
                tar_bytes = self._zstd.tell() - start
                frame = self.end_frame() if own_frames else None
                after = os.fstat(fh.fileno())
            except OSError as err:
                raise from_os_error(err, "writing the archive") from err
        changed = reader.short or (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns)
        return Written(
            size_bytes=info.size,
            sha256=reader.digest.hexdigest(),
            changed=changed,
            frame=frame,
            tar_bytes=tar_bytes,
        )

    def end_frame(self) -> int | None:
        """End the current zstd frame, if it holds anything; its index, for `frame`."""
        if self._zstd.tell() == self._frame_start:
            return None
        self._zstd.end_frame()
        self._frame_start = self._zstd.tell()
        self._frames_queued += 1
        return self._frames_queued - 1

    def frame(self, index: int | None) -> Frame | None:
        """Where the frame `end_frame` or `add_frames` numbered `index` went; None in an
        encrypted archive, whose frames are not recorded."""
        if index is None or self._cipher is not None:
            return None
        if index >= len(self._sealer.frames):
            self._zstd.sync()
        return self._sealer.frames[index]

    def add_frames(self, src: int, frame: Frame, tar_bytes: int) -> int | None:
        """Copy one zstd frame, whole tar members, from `frame.offset` of the open file `src`
        into the archive, byte for byte; keep it only if the bytes now in the archive hash to
        `frame.sha256`. Returns its index (for `frame`), or None when the bytes are not what
        they should be: nothing of them is left in the archive then. A plain archive only."""
        if self._cipher is not None:
            return None
        self.end_frame()
        self._zstd.sync()
        try:
            self._raw.flush()
            at = self._sealer.offset
            fd = self._raw.fileno()
            if _copy_range(src, fd, frame.offset, at, frame.length) and (
                _sha256_at(fd, at, frame.length) == frame.sha256
            ):
                self._raw.seek(at + frame.length)
                self._sealer.copied(Frame(at, frame.length, frame.sha256))
                self._zstd.skip(tar_bytes)
                self._tar.offset += tar_bytes
                self._frame_start = self._zstd.tell()
                self._frames_queued += 1
                self._copied.add(self._frames_queued - 1)
                self._copied_tar_bytes += tar_bytes
                return self._frames_queued - 1
            os.ftruncate(fd, at)
            self._raw.seek(at)
        except OSError as err:
            raise from_os_error(err, "writing the archive") from err
        return None

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
            sealed = self._sealer.seal()
            self._out.write(sealed)
            cipher = self._cipher.close() if self._cipher is not None else None
            self._raw.flush()
            os.fsync(self._raw.fileno())
            size = os.fstat(self._raw.fileno()).st_size
            self._raw.close()
        except OSError as err:
            raise from_os_error(err, "writing the archive") from err
        self._closed = True
        return Finished(
            size_bytes=size,
            stream_bytes=stream_bytes,
            seal=sealed[-32:],
            cipher=cipher,
            frames=tuple(self._sealer.frames),
            copied=frozenset(self._copied),
            copied_tar_bytes=self._copied_tar_bytes,
        )

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._zstd.abandon()
        if self._cipher is not None:
            self._cipher.abort()
        with contextlib.suppress(OSError, ValueError):
            self._raw.close()


def _copy_range(src: int, dst: int, src_at: int, dst_at: int, length: int) -> bool:
    """Copy `length` bytes between open files, in the kernel where it can; False if `src`
    ends first."""
    done = 0
    use_kernel = hasattr(os, "copy_file_range")
    while done < length:
        want = length - done
        if use_kernel:
            try:
                n = os.copy_file_range(src, dst, want, src_at + done, dst_at + done)
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                use_kernel = False  # another file system, or none that can: read and write
                continue
        else:
            data = os.pread(src, min(want, COPY_CHUNK), src_at + done)
            n = os.pwrite(dst, data, dst_at + done) if data else 0
        if n == 0:
            return False
        done += n
    return True


def _sha256_at(fd: int, offset: int, length: int) -> bytes:
    digest = hashlib.sha256()
    end = offset + length
    while offset < end:
        chunk = os.pread(fd, min(COPY_CHUNK, end - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.digest()
