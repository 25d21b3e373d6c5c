"""The archive manifest (CONTRACT section 5) as pydantic models.

The models are the single source of truth: `manifest_json_schema()` generates the schema that is
published in docs/, and a test keeps the published copy equal to it.
"""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

FORMAT = "backupkit-archive"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

Role = Literal["global", "agent", "other"]
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
    mode: int | None = Field(default=None, description="permission bits of the live file")
    captured_as: Literal["snapshot", "raw-copy"] = Field(
        default="snapshot",
        description="snapshot: VACUUM INTO; raw-copy: SQLite could not read it, bytes kept as-is",
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

    def to_json_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


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
