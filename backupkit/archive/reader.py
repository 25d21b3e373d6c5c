"""Read an archive as one stream, checking the container as it goes.

The zstd frames are decompressed incrementally so that three things are checked, not assumed:
each frame's content checksum (zstd checks it at the frame's end), that the last frame ends at
all (a truncated file must not pass because the tar part happened to look complete), and that
nothing follows the frames but the seal (see format.py). Extended headers are bounded before
tarfile reads them into memory, so a small archive cannot claim gigabytes of header.

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
from pathlib import Path

import zstandard

from ..errors import InputError, IntegrityError
from .crypt import (
    ARMOR_MAGIC,
    DecryptingSource,
    Identities,
    is_age_header,
    open_decrypted,
    resolve_identities,
)
from .format import (
    MANIFEST_NAME,
    SEAL_HEADER,
    SEAL_MAGIC,
    SEAL_SIZE,
    ZSTD_MAGIC,
    Seal,
    frames_digest,
    is_seal_prefix,
    parse_seal,
)
from .manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from .policy import member_defect
from .source import ArchiveRef, ArchiveSource, LocalSource, Readable, as_ref, open_source
from .zstdblocks import BlockCutter

READ_CHUNK = 1 << 20


def _decoder() -> zstandard.ZstdDecompressionObj:
    return zstandard.ZstdDecompressor().decompressobj(read_across_frames=False)


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
    """A read-only file object over the decompressed bytes of a run of zstd frames.

    Each frame gets a decoder of its own, so zstd checks every frame's content checksum; a
    frame that does not end, or bytes after a frame's end that start no frame, are defects.
    `digest` is the sha256 of every compressed byte read (a `BKSEAL01` seal); with
    `per_frame`, `frame_digests` holds each frame's sha256 instead (a `BKSEAL02` seal)."""

    def __init__(
        self,
        fh: Readable | _SealSplitter,
        *,
        limit: int | None = None,
        hashed: bool = True,
        per_frame: bool = False,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self._fh = fh
        self._on_read = on_read  # hears the compressed bytes read so far
        self._hashed = hashed and not per_frame
        self._per_frame = per_frame
        self._left = limit  # compressed bytes that belong to the frames (the seal follows)
        self._sealed = limit is not None
        self.digest = hashlib.sha256()  # of the compressed bytes read
        self.frame_digests: list[bytes] = []
        self._frame_hash = hashlib.sha256()
        self._dobj = _decoder()
        # Bytes after a frame's end that do not yet show whether a frame follows; None
        # inside a frame.
        self._between: bytes | None = None
        self._cutter = BlockCutter()
        self._pieces: deque[tuple[bytes, bool]] = deque()
        self._buf = b""
        self._pos = 0
        self._eof = False
        self.compressed_read = 0
        self.position = 0  # decompressed bytes handed out so far
        self._tail = bytearray()  # the last TAIL_KEEP of them

    def _read_raw(self) -> bytes:
        want = READ_CHUNK if self._left is None else min(READ_CHUNK, self._left)
        chunk = self._fh.read(want) if want else b""
        if self._left is not None:
            self._left -= len(chunk)
        if self._hashed:
            self.digest.update(chunk)
        self.compressed_read += len(chunk)
        if self._on_read is not None:
            self._on_read(self.compressed_read)
        return chunk

    def _fill(self) -> None:
        while self._pos >= len(self._buf) and not self._eof:
            if self._pieces:
                self._decode(*self._pieces.popleft())
                continue
            chunk = self._read_raw()
            if not chunk:
                self._at_end()
                return
            # Pieces that each complete a bounded number of blocks: memory stays bounded
            # whatever one megabyte of input decodes to (see zstdblocks.py).
            self._pieces = deque(self._cutter.cut(chunk))

    def _at_end(self) -> None:
        if self._between is None:
            raise IntegrityError("archive is truncated: the zstd frame does not end")
        if self._between:
            self._not_a_frame()
        self._eof = True

    @property
    def sealed(self) -> bool:
        """Did a seal follow the frames? (For an encrypted archive, known at the end.)"""
        return self._sealed or (isinstance(self._fh, _SealSplitter) and self._fh.seal is not None)

    def _decode(self, piece: bytes, ends_frame: bool) -> None:
        if self._between is not None:
            # A frame ended: what follows must be the next frame.
            self._between += piece
            if len(self._between) < len(ZSTD_MAGIC) and not ends_frame:
                return
            if self._between[: len(ZSTD_MAGIC)] != ZSTD_MAGIC:
                self._not_a_frame()
            piece, self._between = self._between, None
            self._dobj = _decoder()
        if self._per_frame:
            self._frame_hash.update(piece)
        try:
            self._buf = self._dobj.decompress(piece)
            self._pos = 0
        except zstandard.ZstdError as err:
            raise IntegrityError(f"archive is corrupt: zstd says {err}") from err
        if self._dobj.eof != ends_frame or (self._dobj.eof and self._dobj.unused_data):
            raise IntegrityError("archive is corrupt: a zstd frame ends where its blocks do not")
        if ends_frame:
            self.frame_digests.append(self._frame_hash.digest())
            self._frame_hash = hashlib.sha256()
            self._between = b""

    def _not_a_frame(self) -> None:
        """Bytes after a frame's end that start no frame: a seal cut short, or trailing data."""
        rest = (self._between or b"") + b"".join(p for p, _ends in self._pieces)
        while len(rest) < SEAL_SIZE and (chunk := self._read_raw()):
            rest += chunk
        if is_seal_prefix(rest):
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

    def seal_digest(self) -> bytes:
        """What the seal must hold for the bytes read so far."""
        return frames_digest(self.frame_digests) if self._per_frame else self.digest.digest()

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
    archive: ArchiveRef,
    identities: Identities | None,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[tuple[ZstdFrameReader, Callable[[], bytes | None]]]:
    """A reader over the archive's frames (decrypted, for an encrypted one), and how to get
    its sealed digest (for an encrypted archive, once the stream has been read to its end)."""
    src = open_source(archive)
    with contextlib.ExitStack() as stack:
        stack.callback(src.close)
        if not is_encrypted_source(src):
            frame_size, seal = read_seal(src)
            per_frame = seal is not None and seal.kind == "frames"
            digest = seal.digest if seal is not None else None
            reader = ZstdFrameReader(
                src.stream(frame_size), limit=frame_size, per_frame=per_frame, on_read=on_read
            )
            yield reader, lambda: digest
            return
        decrypted = open_decrypted(src.stream(None), identities, src.label)
        plain = _SealSplitter(stack.enter_context(decrypted))
        if plain.peek(4) != ZSTD_MAGIC:
            raise InputError(
                f"{src.label} is not a backupkit archive (its age plaintext is not zstd)"
            )
        yield ZstdFrameReader(plain, on_read=on_read), lambda: plain.seal


def read_seal(src: ArchiveSource) -> tuple[int | None, Seal | None]:
    """(length of the frames before the seal, the seal), or (None, None) for an unsealed
    archive."""
    size = src.size()
    if size < SEAL_SIZE + 4:
        return None, None
    tail = src.read_at(size - SEAL_SIZE, SEAL_SIZE)
    if tail[:4] != SEAL_MAGIC:
        return None, None
    seal = parse_seal(tail)
    if seal is None:
        raise IntegrityError("archive has trailing data after its zstd frame (a damaged seal?)")
    return size - SEAL_SIZE, seal


def iter_members(
    archive: ArchiveRef,
    identities: Identities | None = None,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile, ZstdFrameReader]]:
    """Yield each tar member in order; after the last, the frame's end and the seal are checked.
    An encrypted archive needs `identities` (InputError, exit 2, without them). `on_read` hears
    the compressed bytes read so far (of the decrypted stream, for an encrypted archive)."""
    with _frame_source(archive, identities, on_read) as (stream, sealed_of):
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
        if sealed is not None and stream.seal_digest() != sealed:
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
    if sealed is not None and stream.seal_digest() != sealed:
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
