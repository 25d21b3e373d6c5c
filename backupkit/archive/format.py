"""The archive's fixed names and framing: file names, backup ids, the manifest's name, the
sidecar suffixes no archive may hold, and the seal that ends every archive.

An archive is one zstd frame holding a POSIX (pax) tar stream, followed by the seal: a zstd
skippable frame (magic 0x184D2A50, which stock zstd and tar skip) that holds an 8-byte tag and
the sha256 of every compressed byte before it. The seal catches what nothing inside the frame
can: a flipped bit zstd never reads, which leaves the decoded stream, and so every content
check, unchanged. Like every unkeyed hash it proves against accidents, not against a forger.
"""

from __future__ import annotations

import re
import secrets
import struct
from datetime import UTC, datetime
from typing import Final

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
SEAL_SIZE = len(SEAL_HEADER) + 32

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


def seal_bytes(digest: bytes) -> bytes:
    """The seal appended after the frame: the sha256 of every compressed byte before it."""
    return SEAL_HEADER + digest


def is_seal_prefix(data: bytes) -> bool:
    """Could `data` be the start of a seal that was cut short?"""
    cut = min(len(data), len(SEAL_HEADER))
    return len(data) < SEAL_SIZE and data[:cut] == SEAL_HEADER[:cut]
