"""Reusing the members of unchanged databases from the newest good archive of this state dir.

The earlier archive is the newest `ok` backup in this state dir's ledger that is plain and still
on disk (a few backups back at most); its row holds its manifest, so no archive is read to find
it. Its entries that recorded source facts (see
unchanged.py) and a frame of their own are the candidates; capture proves each database
unchanged or snapshots it. A proven database's frame is copied from the earlier file into the
new archive, byte for byte, and kept only if the copied bytes hash to the sha256 recorded when
the earlier archive wrote them (`ArchiveWriter.add_frames`). Anything short of that (no ledger,
an archive that is missing, encrypted, of another state dir, truncated or changed) means a full
capture of that database, never a failed backup. Nothing is reused into an encrypted archive:
its bytes must all pass through age.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import pydantic

from ..archive.format import ZSTD_MAGIC, Frame
from ..archive.manifest import DatabaseEntry, Manifest, MemberFrames
from ..archive.writer import ArchiveWriter
from ..ops import ledger
from ..state.discover import DatabaseSource
from ..state.layout import StateLayout
from .capture import Unchanged

# How many good backups back to look for one that is plain and still on disk.
LOOK_BACK = 8


@dataclass
class EarlierArchive:
    """The newest good archive of this state dir, open for copying from."""

    backup_id: str
    path: Path
    fd: int
    candidates: dict[str, DatabaseEntry]  # by archive path

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _reusable(entry: DatabaseEntry) -> bool:
    return (
        entry.source is not None
        and entry.frames is not None
        and entry.integrity == "ok"
        and entry.captured_as == "snapshot"
        and entry.journal_mode == "wal"
    )


def _open_plain(path: Path) -> int | None:
    """A read descriptor on a plain (zstd, not age) archive, or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if os.pread(fd, len(ZSTD_MAGIC), 0) == ZSTD_MAGIC:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def earlier_archive(layout: StateLayout) -> EarlierArchive | None:
    """The archive of the newest good backup of this state dir that can be reused from: an
    encrypted or vanished one is passed over for the one before it, a few backups back."""
    for row in ledger.recent_good_backups(layout.global_db, LOOK_BACK):
        found = _reusable_archive(layout, row)
        if found is not None:
            return found
    return None


def _reusable_archive(layout: StateLayout, row: ledger.Row) -> EarlierArchive | None:
    if row.archive_path is None or row.payload is None:
        return None
    try:
        manifest = Manifest.model_validate(row.payload)
    except pydantic.ValidationError:
        return None
    same_state = os.path.normpath(manifest.state_dir) == os.path.normpath(layout.state_dir)
    if not same_state or manifest.encryption is not None or manifest.backup_id != row.id:
        return None
    candidates = {d.archive_path: d for d in manifest.databases if _reusable(d)}
    if not candidates:
        return None
    path = Path(row.archive_path)
    fd = _open_plain(path)
    if fd is None:
        return None
    return EarlierArchive(manifest.backup_id, path, fd, candidates)


def candidate_for(earlier: EarlierArchive | None, source: DatabaseSource) -> DatabaseEntry | None:
    """The earlier entry a capture of `source` may prove unchanged: the same member name, for
    the same live path."""
    if earlier is None:
        return None
    entry = earlier.candidates.get(source.archive_path)
    if entry is None or entry.source_path != os.fspath(source.path):
        return None
    return entry


def copy_unchanged(
    writer: ArchiveWriter, earlier: EarlierArchive, unchanged: Unchanged
) -> tuple[DatabaseEntry, int] | None:
    """Copy a proven-unchanged database's member from the earlier archive: its entry for the
    new manifest (the frame still to be filled in) and the frame's index, or None when the
    earlier bytes are not what was recorded (the caller captures the database in full)."""
    entry = unchanged.earlier
    recorded = entry.frames
    assert recorded is not None  # a candidate has one
    try:
        frame = Frame(recorded.offset, recorded.length, bytes.fromhex(recorded.sha256))
    except ValueError:
        return None
    index = writer.add_frames(earlier.fd, frame, recorded.tar_bytes)
    if index is None:
        return None
    # The member is the earlier capture's, so is its entry (checkpoint, facts and check
    # included); only where its frame now is and where it came from are new.
    reused = entry.model_copy(update={"reused_from": earlier.backup_id})
    return reused, index


def with_frame(entry: DatabaseEntry, frame: Frame | None, tar_bytes: int) -> DatabaseEntry:
    """The entry with where its frame went in the new archive (none in an encrypted one)."""
    if frame is None:
        return entry.model_copy(update={"frames": None})
    placed = MemberFrames(
        offset=frame.offset, length=frame.length, sha256=frame.sha256.hex(), tar_bytes=tar_bytes
    )
    return entry.model_copy(update={"frames": placed})
