"""The archive's fixed names and framing: file names, backup ids, the manifest's name, the
sidecar suffixes no archive may hold, and the seal that ends every archive.

An archive is a POSIX (pax) tar stream compressed into concatenated zstd frames (stock zstd
and tar read them as one stream), followed by the seal: a zstd skippable frame (magic
0x184D2A50, which stock zstd and tar skip) that holds an 8-byte tag and a sha256. Each database
member stands in zstd frames of its own, so a later backup can copy its compressed bytes
unchanged (backup/reuse.py).

The seal catches what nothing inside the frames can: a flipped bit zstd never reads, which
leaves the decoded stream, and so every content check, unchanged. Two kinds exist. `BKSEAL01`
holds the sha256 of every compressed byte before it (archives written before members had frames
of their own, and encrypted ones). `BKSEAL02` holds the sha256 of the list of each frame's
sha256, in order: as strong, and a frame copied from an earlier archive, whose sha256 is proven
where it is copied, need not be hashed a second time. Like every unkeyed hash it proves
against accidents, not against a forger.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from datetime import UTC, datetime
from typing import Final, Literal, NamedTuple

ARCHIVE_PREFIX = "openclaw-backup-"
ARCHIVE_SUFFIX = ".tar.zst"
# An archive encrypted in the age format (archive/crypt.py) adds this to the name.
ENCRYPTED_SUFFIX = ".age"
ARCHIVE_MODE = 0o600
MANIFEST_NAME = "manifest.json"
FORMAT: Final = "backupkit-archive"
FORMAT_VERSION = 1

# A database's sidecars: never members, never copied live, moved aside on an in-place restore.
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SEAL_MAGIC = b"\x50\x2a\x4d\x18"
SEAL_TAG = b"BKSEAL01"
SEAL_HEADER = SEAL_MAGIC + struct.pack("<I", len(SEAL_TAG) + 32) + SEAL_TAG
FRAMES_SEAL_TAG = b"BKSEAL02"
FRAMES_SEAL_HEADER = SEAL_MAGIC + struct.pack("<I", len(FRAMES_SEAL_TAG) + 32) + FRAMES_SEAL_TAG
SEAL_SIZE = len(SEAL_HEADER) + 32
SealKind = Literal["stream", "frames"]

_STAMP = "%Y%m%dT%H%M%SZ"
_ID = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{8})$")
_NAME = re.compile(
    "^"
    + re.escape(ARCHIVE_PREFIX)
    + r"(\d{8}T\d{6}Z-[0-9a-f]{8})"
    + re.escape(ARCHIVE_SUFFIX)
    + "(?:"
    + re.escape(ENCRYPTED_SUFFIX)
    + ")?$"
)


def new_backup_id(now: datetime) -> str:
    return f"{now.strftime(_STAMP)}-{secrets.token_hex(4)}"


def archive_name(backup_id: str, *, encrypted: bool = False) -> str:
    suffix = ARCHIVE_SUFFIX + (ENCRYPTED_SUFFIX if encrypted else "")
    return f"{ARCHIVE_PREFIX}{backup_id}{suffix}"


def is_encrypted_name(name: str) -> bool:
    """Is this an archive's name with the encrypted suffix (`.tar.zst.age`)?"""
    return name.endswith(ARCHIVE_SUFFIX + ENCRYPTED_SUFFIX)


def parse_backup_id(backup_id: str) -> datetime | None:
    """When a backup id says it was taken (UTC), or None for a string that is not one."""
    match = _ID.match(backup_id)
    if not match:
        return None
    return datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)


def parse_archive_name(name: str) -> tuple[str, datetime] | None:
    """(backup id, time) for a file named like an archive (plain or encrypted), else None."""
    match = _NAME.match(name)
    if not match:
        return None
    backup_id = match.group(1)
    when = parse_backup_id(backup_id)
    assert when is not None  # the name pattern embeds the id pattern
    return backup_id, when


def seal_bytes(digest: bytes, kind: SealKind = "stream") -> bytes:
    """The seal appended after the frames: `digest` is the sha256 of every compressed byte
    before it ("stream") or `frames_digest` of their frames ("frames")."""
    return (SEAL_HEADER if kind == "stream" else FRAMES_SEAL_HEADER) + digest


def frames_digest(frame_digests: list[bytes]) -> bytes:
    """What a `BKSEAL02` seal holds: the sha256 of each frame's sha256, in order."""
    return hashlib.sha256(b"".join(frame_digests)).digest()


class Seal(NamedTuple):
    kind: SealKind
    digest: bytes


class Frame(NamedTuple):
    """One zstd frame of an archive as written: where it starts in the file, how long it is,
    and the sha256 of its bytes."""

    offset: int
    length: int
    sha256: bytes


def parse_seal(tail: bytes) -> Seal | None:
    """The seal in `tail`, or None for bytes that are not a whole seal."""
    if len(tail) != SEAL_SIZE:
        return None
    if tail[: len(SEAL_HEADER)] == SEAL_HEADER:
        return Seal("stream", tail[len(SEAL_HEADER) :])
    if tail[: len(FRAMES_SEAL_HEADER)] == FRAMES_SEAL_HEADER:
        return Seal("frames", tail[len(FRAMES_SEAL_HEADER) :])
    return None


def is_seal_prefix(data: bytes) -> bool:
    """Could `data` be the start of a seal that was cut short?"""
    cut = min(len(data), len(SEAL_HEADER))
    return len(data) < SEAL_SIZE and data[:cut] in (SEAL_HEADER[:cut], FRAMES_SEAL_HEADER[:cut])
