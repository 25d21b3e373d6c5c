"""The archive manifest as pydantic models, and the one parser every reader uses.

The models are the single source of truth: `manifest_json_schema()` generates the schema that is
published in docs/manifest.schema.json, and a test keeps the published copy equal to it.
"""

from __future__ import annotations

from typing import Literal

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from .. import jsonio
from ..errors import IntegrityError
from .format import FORMAT, FORMAT_VERSION

# No real manifest comes near this (about 300 bytes per entry); a bigger one is refused before
# it is read into memory.
MAX_MANIFEST_BYTES = 64 << 20

JournalMode = Literal["wal", "rollback"]
Role = Literal["global", "agent", "other"]
CapturedAs = Literal["snapshot", "raw-copy"]
FileKind = Literal[
    "config", "credential", "auth-profile", "workspace", "legacy", "state", "external"
]


class _Model(BaseModel):
    # Unknown fields are kept, not rejected: an archive from a newer minor writer stays readable.
    model_config = ConfigDict(extra="allow")


class Checkpoint(_Model):
    """What the pre-capture WAL checkpoint achieved (SQLite's own three numbers)."""

    mode: Literal["truncate", "passive", "none"]
    busy: bool
    log_frames: int
    checkpointed_frames: int


class SourceFacts(_Model):
    """The live main file as it stood while capture held it still: a read transaction on an
    empty WAL, during which SQLite writes nothing into the main file (backup/unchanged.py). A
    later backup compares these to prove the database unchanged since this capture."""

    device: int
    inode: int
    size_bytes: int
    mtime_ns: int
    ctime_ns: int
    captured_at_ns: int = Field(
        description="the wall clock (ns since the epoch) once the snapshot was taken, while the "
        "main file was still held; times within the file system's timestamp granularity of it "
        "are not trusted"
    )
    discovered_role: Role = Field(description="the role discovery gave the database")
    discovered_agent_id: str | None = Field(description="the agent id discovery gave it")


class MemberFrames(_Model):
    """The zstd frame that holds the member (tar header, data, padding) in this archive."""

    offset: int = Field(description="where the frame starts in the archive file")
    length: int = Field(description="compressed bytes")
    sha256: str = Field(description="of the compressed bytes")
    tar_bytes: int = Field(description="how much of the tar stream the frame holds")


class DatabaseEntry(_Model):
    role: Role
    agent_id: str | None
    schema_version: int | None
    user_version: int | None
    source_path: str = Field(description="absolute path of the live database")
    archive_path: str = Field(description="member name of the snapshot in the archive")
    size_bytes: int
    sha256: str
    integrity: str = Field(description='"ok" or the first error line of PRAGMA integrity_check')
    checkpoint: Checkpoint | None = None
    journal_mode: JournalMode | None = Field(
        default=None,
        description="how the live database journals: wal (checkpointed, then VACUUM INTO) or "
        "rollback (VACUUM INTO, waiting for writers' locks); null for a raw copy",
    )
    mode: int | None = Field(default=None, description="permission bits of the live file")
    captured_as: CapturedAs = Field(
        default="snapshot",
        description="snapshot: VACUUM INTO; raw-copy: SQLite could not read it, bytes kept as-is",
    )
    findings: list[str] = Field(
        default_factory=list,
        description="what capture found about the source database that is not a defect of the "
        "archive (foreign-key violations, a schema_meta that disagrees with where the database "
        "lives); verify finds the same list again in a faithful archive",
    )
    source: SourceFacts | None = Field(
        default=None,
        description="the live main file as it stood at capture; null when it could not be "
        "held still (a busy WAL), and then no later backup reuses this member",
    )
    frames: MemberFrames | None = Field(
        default=None, description="where the member's own zstd frame is; null when encrypted"
    )
    reused_from: str | None = Field(
        default=None,
        description="backup id of the earlier archive whose compressed bytes of this member "
        "were copied, unchanged, because the database was proven unchanged; null when "
        "captured by this backup",
    )


class FileEntry(_Model):
    kind: FileKind
    source_path: str
    archive_path: str
    size_bytes: int
    sha256: str
    mode: int = Field(description="permission bits, e.g. 384 for 0o600")


class LinkEntry(_Model):
    source_path: str
    archive_path: str
    target: str = Field(description="the link's text, stored as-is and never followed")
    outside_state_dir: bool


class DirectoryEntry(_Model):
    source_path: str
    archive_path: str
    mode: int


class SkippedEntry(_Model):
    source_path: str
    reason: str


class Encryption(_Model):
    """How the archive around this manifest is encrypted. Public facts only: no key."""

    format: Literal["age"] = "age"
    recipients: int = Field(description="how many recipients the archive is encrypted to")
    recipient_fingerprints: list[str] = Field(
        default_factory=list,
        description='each recipient as "sha256:" and the first 16 hex digits of the sha256 '
        "of its public key (docs/encryption.md)",
    )


class Manifest(_Model):
    format: Literal["backupkit-archive"] = FORMAT
    format_version: int = FORMAT_VERSION
    backup_id: str
    created_at: str = Field(description="ISO 8601 UTC")
    reason: str
    tool_version: str
    state_dir: str
    databases: list[DatabaseEntry]
    files: list[FileEntry]
    skipped: list[SkippedEntry]
    sealed: bool = Field(
        default=False,
        description="the archive ends with a sha256 seal of its compressed bytes (a zstd "
        "skippable frame); verify treats a sealed archive without its seal as cut short",
    )
    links: list[LinkEntry] = Field(default_factory=list)
    directories: list[DirectoryEntry] = Field(default_factory=list)
    config_path: str | None = Field(
        default=None, description="where the config file was resolved at backup time"
    )
    credentials_dir: str | None = Field(
        default=None, description="where the credentials dir was resolved at backup time"
    )
    encryption: Encryption | None = Field(
        default=None, description="set when the archive is age-encrypted; null for plaintext"
    )

    def to_json_bytes(self) -> bytes:
        return jsonio.dumps(self.model_dump(mode="json"), indent=True)


def parse_manifest(data: bytes) -> Manifest:
    """The manifest in `data`, or IntegrityError saying in one line what is wrong with it."""
    try:
        raw = jsonio.loads(data)
    except ValueError as err:
        raise IntegrityError(f"manifest.json is not valid JSON: {err}") from err
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise IntegrityError("manifest.json is not a backupkit manifest")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise IntegrityError(
            f"archive format_version {version} is newer than this backupkit understands "
            f"({FORMAT_VERSION}): upgrade backupkit to verify or restore it"
        )
    try:
        return Manifest.model_validate(raw)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IntegrityError(f"manifest.json is malformed at {where}: {first['msg']}") from err


def manifest_json_schema() -> dict[str, object]:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "backupkit-archive-manifest-v1"
    return schema


def manifest_json_schema_text() -> str:
    return (
        orjson.dumps(
            manifest_json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
        ).decode()
        + "\n"
    )
