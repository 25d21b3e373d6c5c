"""Read an archive as one stream, checking the container as it goes.

The zstd frame is decompressed incrementally so that three things are checked, not assumed:
the frame's content checksum (zstd checks it at the frame's end), that the frame ends at all
(a truncated file must not pass because the tar part happened to look complete), and that nothing
follows it but the seal (see format.py). Extended headers are bounded before tarfile reads them
into memory, so a small archive cannot claim gigabytes of header.

An encrypted archive (crypt.py) is read the same way, from the plaintext that age decrypts as it
goes: that stream cannot be read from its end first, so its seal is split off as it passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import zstandard

from ..errors import InputError, IntegrityError, from_os_error
from .crypt import (
    ARMOR_MAGIC,
    DecryptingSource,
    Identities,
    is_age_header,
    open_decrypted,
    resolve_identities,
)
from .format import MANIFEST_NAME, SEAL_HEADER, SEAL_MAGIC, SEAL_SIZE, ZSTD_MAGIC, is_seal_prefix
from .manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from .policy import member_defect
from .source import ArchiveRef, ArchiveSource, LocalSource, Readable, as_ref, open_source
from .zstdblocks import BlockCutter

READ_CHUNK = 1 << 20
# tarfile reads ahead in records of 10 KiB: keep more than that to check what follows its end.
TAIL_KEEP = 64 << 10
# A pax or GNU long-name header holds a path and a few numbers; backupkit writes at most a few
# KiB. tarfile reads a header whole into memory, so a bigger one is refused before it is read.
MAX_HEADER_BYTES = 1 << 20
_HEADER_TYPES = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses an extended header larger than MAX_HEADER_BYTES before tarfile
    reads it (tarfile would allocate whatever size the header block claims)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _HEADER_TYPES and self.size > MAX_HEADER_BYTES:
            raise tarfile.HeaderError(
                f"an extended header claims {self.size} bytes (at most {MAX_HEADER_BYTES})"
            )
        # _proc_member is tarfile's private hook, overridden on purpose; typeshed omits it.
        return super()._proc_member(tarfile_)  # type: ignore[misc,no-any-return]


class _SealSplitter:
    """The plaintext of an encrypted archive, read front to back. It cannot be seeked, so its
    seal cannot be read from its end first: every byte but the last SEAL_SIZE is handed out, and
    at the end those are kept as the seal if they are one (`seal`), else handed out too."""

    def __init__(self, src: DecryptingSource) -> None:
        self._src = src
        self._held = bytearray()
        self._eof = False
        self.seal: bytes | None = None

    def _fill(self, want: int) -> None:
        while not self._eof and len(self._held) < want + SEAL_SIZE:
            chunk = self._src.read(max(READ_CHUNK, want))
            if not chunk:
                self._eof = True
                self._split_seal()
                return
            self._held += chunk

    def _split_seal(self) -> None:
        tail = bytes(self._held[-SEAL_SIZE:])
        if len(tail) == SEAL_SIZE and tail[:4] == SEAL_MAGIC:
            if tail[: len(SEAL_HEADER)] != SEAL_HEADER:
                raise IntegrityError(
                    "archive has trailing data after its zstd frame (a damaged seal?)"
                )
            self.seal = tail[len(SEAL_HEADER) :]
            del self._held[-SEAL_SIZE:]

    def peek(self, size: int) -> bytes:
        self._fill(size)
        return bytes(self._held[:size])

    def read(self, size: int = READ_CHUNK) -> bytes:
        self._fill(size)
        out = self._held[:size] if self._eof else self._held[: max(0, len(self._held) - SEAL_SIZE)]
        out = out[:size]
        del self._held[: len(out)]
        return bytes(out)


class ZstdFrameReader:
    """A read-only file object over the decompressed bytes of exactly one zstd frame."""

    def __init__(
        self,
        fh: Readable | _SealSplitter,
        *,
        limit: int | None = None,
        hashed: bool = True,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self._fh = fh
        self._on_read = on_read  # hears the compressed bytes read so far
        self._hashed = hashed
        self._left = limit  # compressed bytes that belong to the frame (the seal follows)
        self._sealed = limit is not None
        self.digest = hashlib.sha256()  # of the compressed bytes read
        self._dobj = zstandard.ZstdDecompressor().decompressobj(read_across_frames=False)
        self._cutter = BlockCutter()
        self._pieces: deque[bytes] = deque()
        self._buf = b""
        self._pos = 0
        self._eof = False
        self.compressed_read = 0
        self.position = 0  # decompressed bytes handed out so far
        self._tail = bytearray()  # the last TAIL_KEEP of them

    def _fill(self) -> None:
        while self._pos >= len(self._buf) and not self._eof:
            if self._pieces:
                self._decode(self._pieces.popleft())
                continue
            want = READ_CHUNK if self._left is None else min(READ_CHUNK, self._left)
            chunk = self._fh.read(want) if want else b""
            if self._left is not None:
                self._left -= len(chunk)
            if self._hashed:
                self.digest.update(chunk)
            self.compressed_read += len(chunk)
            if self._on_read is not None:
                self._on_read(self.compressed_read)
            if not chunk:
                if not self._dobj.eof:
                    raise IntegrityError("archive is truncated: the zstd frame does not end")
                self._eof = True
                return
            # Pieces that each complete a bounded number of blocks: memory stays bounded
            # whatever one megabyte of input decodes to (see zstdblocks.py).
            self._pieces = deque(self._cutter.cut(chunk))

    @property
    def sealed(self) -> bool:
        """Did a seal follow the frame? (For an encrypted archive, known at the end.)"""
        return self._sealed or (isinstance(self._fh, _SealSplitter) and self._fh.seal is not None)

    def _decode(self, piece: bytes) -> None:
        if self._dobj.eof:
            raise IntegrityError("archive has trailing data after its zstd frame")
        try:
            self._buf = self._dobj.decompress(piece)
            self._pos = 0
        except zstandard.ZstdError as err:
            raise IntegrityError(f"archive is corrupt: zstd says {err}") from err
        if self._dobj.eof and self._dobj.unused_data:
            if is_seal_prefix(self._dobj.unused_data):
                raise IntegrityError("archive is truncated: the seal after its frame is cut")
            raise IntegrityError("archive has trailing data after its zstd frame")

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts: list[bytes] = []
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


def open_archive_file(path: Path) -> LocalSource:
    """Open a plain local archive for reading; exit 2 when it is missing or plainly not one of
    ours."""
    src = LocalSource(path)
    try:
        if is_encrypted_source(src):
            raise InputError(f"{path} is an encrypted archive: it cannot be read without a key")
    except BaseException:
        src.close()
        raise
    return src


def is_encrypted_source(src: ArchiveSource) -> bool:
    """Plain (zstd) or encrypted (age)? Exit 2 for anything else."""
    head = src.read_at(0, len(ARMOR_MAGIC))
    if is_age_header(head):
        return True
    if head[:4] != ZSTD_MAGIC:
        what = "an empty file" if not head else "not a zstd or age file"
        raise InputError(
            f"{src.label} is not a backupkit archive ({what}): name an archive file "
            "(see `backupkit list`)"
        )
    return False


def is_encrypted_archive(archive: ArchiveRef) -> bool:
    """Is `archive` (a path or a remote object) age-encrypted? Exit 2 when it is missing or
    plainly not an archive."""
    src = open_source(archive)
    try:
        return is_encrypted_source(src)
    finally:
        src.close()


@contextlib.contextmanager
def _frame_source(
    archive: ArchiveRef, identities: Identities | None
) -> Iterator[tuple[Readable | _SealSplitter, int | None, Callable[[], bytes | None]]]:
    """The compressed bytes of an archive (decrypted, for an encrypted one), the length of
    its frame when known up front, and how to get its sealed sha256 (for an encrypted archive,
    once the stream has been read to its end)."""
    src = open_source(archive)
    with contextlib.ExitStack() as stack:
        stack.callback(src.close)
        if not is_encrypted_source(src):
            frame_size, sealed = read_seal(src)
            yield src.stream(frame_size), frame_size, lambda: sealed
            return
        decrypted = open_decrypted(src.stream(None), identities, src.label)
        plain = _SealSplitter(stack.enter_context(decrypted))
        if plain.peek(4) != ZSTD_MAGIC:
            raise InputError(
                f"{src.label} is not a backupkit archive (its age plaintext is not zstd)"
            )
        yield plain, None, lambda: plain.seal


def read_seal(src: ArchiveSource) -> tuple[int | None, bytes | None]:
    """(length of the frame part, the sealed sha256), or (None, None) for an unsealed archive."""
    size = src.size()
    if size < SEAL_SIZE + 4:
        return None, None
    tail = src.read_at(size - SEAL_SIZE, SEAL_SIZE)
    if tail[:4] != SEAL_MAGIC:
        return None, None
    if tail[: len(SEAL_HEADER)] != SEAL_HEADER:
        raise IntegrityError("archive has trailing data after its zstd frame (a damaged seal?)")
    return size - SEAL_SIZE, tail[len(SEAL_HEADER) :]


def read_back(
    path: Path, on_read: Callable[[int], None] | None = None
) -> tuple[int, bytes, bytes | None]:
    """Decode the archive's whole frame without parsing what is inside: zstd checks its content
    checksum at the frame's end. Returns (decoded bytes, sha256 of the compressed bytes before
    the seal, the sealed sha256 or None). `on_read` hears the compressed bytes read so far."""
    src = open_archive_file(path)
    try:
        frame_size, sealed = read_seal(src)
        # Hash the compressed bytes on another core while this one decodes them.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seal") as pool:
            digest = pool.submit(_sha256_prefix, src.fileno(), frame_size)
            stream = ZstdFrameReader(
                src.stream(frame_size), limit=frame_size, hashed=False, on_read=on_read
            )
            stream.drain()
            return stream.position, digest.result(), sealed
    finally:
        src.close()


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


def iter_members(
    archive: ArchiveRef,
    identities: Identities | None = None,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile, ZstdFrameReader]]:
    """Yield each tar member in order; after the last, the frame's end and the seal are checked.
    An encrypted archive needs `identities` (InputError, exit 2, without them). `on_read` hears
    the compressed bytes read so far (of the decrypted stream, for an encrypted archive)."""
    with _frame_source(archive, identities) as (fh, frame_size, sealed_of):
        stream = ZstdFrameReader(fh, limit=frame_size, on_read=on_read)
        members = 0
        try:
            # typeshed wants a full file object; in "r|" mode tarfile only calls read().
            with tarfile.open(  # type: ignore[call-overload]
                fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo
            ) as tar:
                for member in tar:
                    members += 1
                    yield member, tar, stream
                    # A stream is read once: the list tarfile keeps of past members would
                    # only grow with the archive.
                    tar.members.clear()
                tar_end = tar.offset
        except tarfile.ReadError as err:
            if members == 0:
                _no_tar_inside(archive, stream, sealed_of, err)
            raise IntegrityError(f"archive is damaged: tar says {err}") from err
        except tarfile.TarError as err:
            raise IntegrityError(f"archive is damaged: tar says {err}") from err
        stream.check_end(tar_end)
        sealed = sealed_of()
        if sealed is not None and stream.digest.digest() != sealed:
            raise IntegrityError(
                "archive bytes differ from the seal written at backup time (sha256 mismatch)"
            )


def _no_tar_inside(
    archive: ArchiveRef,
    stream: ZstdFrameReader,
    sealed_of: Callable[[], bytes | None],
    err: tarfile.ReadError,
) -> None:
    """The first tar header did not parse. A whole, intact zstd frame around it means a zstd
    file that is no backupkit archive (exit 2); a frame that fails its own checks means a
    damaged archive (exit 1, raised from here by the reader)."""
    stream.drain()
    sealed = sealed_of()
    if sealed is not None and stream.digest.digest() != sealed:
        raise IntegrityError("archive bytes differ from the seal written at backup time") from err
    raise InputError(
        f"{archive} is not a backupkit archive (its zstd stream holds no tar)"
    ) from err


def read_manifest(
    archive: str | os.PathLike[str] | ArchiveRef,
    *,
    identity: str | os.PathLike[str] | Identities | None = None,
) -> Manifest:
    """Stream the archive up to its manifest (the last member) and parse it. Every member name
    passes the member policy on the way; nothing else about the members is proven (verify
    does that). An encrypted archive needs `identity` (a file, else $BACKUPKIT_IDENTITY_FILE)."""
    ref = as_ref(archive)
    identities = resolve_identities(identity) if is_encrypted_archive(ref) else None
    for member, tar, _stream in iter_members(ref, identities):
        bad = member_defect(member)
        if bad:
            raise IntegrityError(bad)
        if member.name == MANIFEST_NAME:
            if member.size > MAX_MANIFEST_BYTES:
                raise IntegrityError("manifest.json is implausibly large")
            fh = tar.extractfile(member)
            assert fh is not None
            return parse_manifest(fh.read())
    raise IntegrityError(f"archive {archive} has no manifest.json")
