"""The backup's proof of its own archive: read the published file back.

Everything the manifest says was established while the archive was written: each database was
checked as a snapshot file, and each member's sha256 was taken from the very bytes fed to zstd.
What is left to prove is that the file on disk decodes to that stream. Each of its zstd frames
must hash to the sha256 taken as it was written (their list is what the seal holds), and
decoding them must pass zstd's content checksum (taken over the tar stream as it went in) and
give exactly as many bytes. That costs one decompression, against the full verify's
decompression, tar parse and a second sha256 of every member; `backupkit verify` still does the
full pass. The ledger records this proof as a read-back row, apart from a full verify.

Frames copied from an earlier archive (backup/reuse.py) are not decoded again: their bytes were
hashed in the new file, right after the copy, against the sha256 recorded when the earlier
archive wrote them, and that archive's own read-back decoded them; the seal covers their hash.

An encrypted archive cannot be decoded here: the machine that backs up holds only public keys.
Its proof is that the file on disk is the ciphertext that was written, byte for byte (its sha256
taken as age wrote it), with an intact age header and a payload as long as the plaintext that
went in; `verify --identity` decrypts it and makes the full pass.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..archive.crypt import ciphertext_defects
from ..archive.format import Frame, Seal, frames_digest
from ..archive.reader import READ_CHUNK, ZstdFrameReader, open_archive_file, read_seal
from ..archive.writer import Finished
from ..errors import BackupError, IntegrityError, from_os_error
from ..progress import Meter


def read_back_defects(archive: Path, written: Finished, meter: Meter | None = None) -> list[str]:
    """What differs between the published file and what was written; [] when they agree.
    `meter` hears how far into the archive file the read has come."""
    on_read = meter.reached if meter is not None and meter.active else None
    if written.cipher is not None:
        return ciphertext_defects(archive, written.cipher, on_read)
    try:
        decoded, digests, seal = _read_back(archive, written.frames, written.copied, on_read)
    except BackupError as err:
        return [str(err)]
    except OSError as err:
        return [str(from_os_error(err, "reading the archive back"))]
    sealed = frames_digest(digests)
    if (
        seal is None
        or seal.kind != "frames"
        or seal.digest != written.seal
        or sealed != seal.digest
    ):
        return ["archive bytes on disk differ from the bytes written (sha256 mismatch)"]
    decoded += written.copied_tar_bytes
    if decoded != written.stream_bytes:
        return [f"archive decodes to {decoded} bytes, but {written.stream_bytes} were written"]
    return []


def _read_back(
    path: Path,
    frames: Sequence[Frame],
    copied: Collection[int],
    on_read: Callable[[int], None] | None = None,
) -> tuple[int, list[bytes], Seal | None]:
    """Decode the frames an archive was written as, without parsing what is inside (zstd
    checks each frame's content checksum), except those at the indexes in `copied`, whose
    bytes were proven where they were copied in. Returns (decoded bytes, each frame's sha256
    as on disk, the copied ones as recorded, the seal or None)."""
    src = open_archive_file(path)
    with contextlib.closing(src):
        fh = src.file
        frame_size, seal = read_seal(src)
        end = frames[-1].offset + frames[-1].length if frames else 0
        starts = [f.offset for f in frames[:1]] == [0] and all(
            f.offset == p.offset + p.length for p, f in itertools.pairwise(frames)
        )
        if frame_size != end or not starts:
            raise IntegrityError(
                "archive on disk is truncated or altered: its frames and seal are not where "
                "they were written"
            )
        fresh = [i for i in range(len(frames)) if i not in copied]
        # Hash the compressed bytes on another core while this one decodes them.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seal") as pool:
            hashed = pool.map(lambda i: _sha256_range(fh.fileno(), frames[i]), fresh)
            decoded = 0
            for start, length in _runs(frames, fresh):
                fh.seek(start)
                heard = None if on_read is None else functools.partial(_offset_by, on_read, start)
                stream = ZstdFrameReader(fh, limit=length, hashed=False, on_read=heard)
                stream.drain()
                decoded += stream.position
            digests = [f.sha256 for f in frames]
            for i, digest in zip(fresh, hashed, strict=True):
                digests[i] = digest
        return decoded, digests, seal


def _offset_by(on_read: Callable[[int], None], start: int, n: int) -> None:
    on_read(start + n)


def _runs(frames: Sequence[Frame], indexes: list[int]) -> Iterator[tuple[int, int]]:
    """(offset, length) of each run of consecutive frames among `indexes`."""
    run: tuple[int, int] | None = None
    for i in indexes:
        f = frames[i]
        if run is not None and run[0] + run[1] == f.offset:
            run = (run[0], run[1] + f.length)
            continue
        if run is not None:
            yield run
        run = (f.offset, f.length)
    if run is not None:
        yield run


def _sha256_range(fd: int, frame: Frame) -> bytes:
    """sha256 of one frame of an open file, read with pread so it shares the descriptor, and
    so the file, that the decoder reads."""
    digest = hashlib.sha256()
    offset, end = frame.offset, frame.offset + frame.length
    try:
        while offset < end:
            chunk = os.pread(fd, min(READ_CHUNK, end - offset), offset)
            if not chunk:
                raise IntegrityError("archive is truncated: a frame is cut short on disk")
            digest.update(chunk)
            offset += len(chunk)
    except OSError as err:
        raise from_os_error(err, "reading the archive back") from err
    return digest.digest()
