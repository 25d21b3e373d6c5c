"""What a restore does: the members chosen, where each one goes, and the report.

Where a member may go is decided here and nowhere else (docs/disaster-recovery.md, "Where a
restore writes"):

- `--target DIR`: `state/X` goes to `DIR/X`, everything else (`external/<absolute path>`) to
  `DIR/external/<absolute path>`; every destination stays inside DIR, whatever DIR is called.
- `--in-place`: `state/X` goes to `<live state dir>/X`; an external member goes only where the
  live installation resolves that item now: the config file to the live config path, credentials
  into the live credentials dir, an agent database to the path the live `agent_databases`
  registers for the same agent id. Anything else is skipped and listed, never written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..archive.manifest import Manifest
from ..archive.policy import contained, safe_mode
from ..archive.source import ArchiveRef
from ..errors import InputError
from ..fsutil import lexically_within
from ..state.discover import discover
from ..state.layout import StateLayout

Action = Literal["create", "replace", "keep", "remove", "skip"]


@dataclass
class PlannedItem:
    action: Action
    path: str
    kind: str  # database, file, symlink, dir
    size_bytes: int
    archive_path: str | None
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class RestoreReport:
    mode: Literal["target", "in-place"]
    archive: ArchiveRef
    state_dir: Path
    dry_run: bool
    items: list[PlannedItem]
    safety_snapshot: Path | None = None
    recovered: str | None = None
    databases: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    owners: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "replace": 0, "keep": 0, "remove": 0, "skip": 0}
        for item in self.items:
            out[item.action] += 1
        return out

    @property
    def created(self) -> list[str]:
        return [i.path for i in self.items if i.action == "create"]

    @property
    def replaced(self) -> list[str]:
        return [i.path for i in self.items if i.action == "replace"]

    @property
    def kept(self) -> list[str]:
        return [i.path for i in self.items if i.action == "keep"]

    @property
    def skipped(self) -> list[str]:
        return [i.path for i in self.items if i.action == "skip"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "mode": self.mode,
            "archive": str(self.archive),
            "state_dir": os.fspath(self.state_dir),
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "items": [i.to_dict() for i in self.items],
            "safety_archive": os.fspath(self.safety_snapshot) if self.safety_snapshot else None,
            "recovered": self.recovered,
            "databases": self.databases,
            "warnings": self.warnings,
            "notes": self.notes,
        }


@dataclass
class Member:
    """One archive member chosen for restore."""

    archive_path: str
    source_path: str
    kind: str  # database, file, symlink, dir
    mode: int
    size_bytes: int = 0
    sha256: str = ""
    target: str = ""  # symlink text
    role: str | None = None
    agent_id: str | None = None
    file_kind: str | None = None  # the manifest's kind of a file (config, credential, ...)


def members_of(manifest: Manifest) -> list[Member]:
    members = [
        Member(
            d.archive_path,
            d.source_path,
            "database",
            safe_mode(d.mode or 0o600),
            d.size_bytes,
            d.sha256,
            role=d.role,
            agent_id=d.agent_id,
        )
        for d in manifest.databases
    ]
    members += [
        Member(
            f.archive_path,
            f.source_path,
            "file",
            safe_mode(f.mode),
            f.size_bytes,
            f.sha256,
            file_kind=f.kind,
        )
        for f in manifest.files
    ]
    members += [
        Member(link.archive_path, link.source_path, "symlink", 0o777, target=link.target)
        for link in manifest.links
    ]
    members += [
        Member(d.archive_path, d.source_path, "dir", safe_mode(d.mode))
        for d in manifest.directories
    ]
    return members


def select(manifest: Manifest, agents: list[str] | None) -> list[Member]:
    """Every member, or only those of the chosen agents (their database and agent directory)."""
    members = members_of(manifest)
    if not agents:
        return members
    known = {d.agent_id: d for d in manifest.databases if d.role == "agent" and d.agent_id}
    unknown = [a for a in agents if a not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise InputError(f"agent {unknown[0]!r} is not in this archive (agents: {listed})")
    chosen = {known[a].archive_path for a in agents}
    prefixes = []
    for a in agents:
        parts = known[a].archive_path.split("/")
        if parts[:2] == ["state", "agents"] and len(parts) >= 3:
            prefixes.append("/".join(parts[:3]))
    return [
        m
        for m in members
        if m.archive_path in chosen
        or any(m.archive_path == p or m.archive_path.startswith(p + "/") for p in prefixes)
    ]


def target_destination(member: Member, target: Path) -> Path:
    name = member.archive_path
    relative = name[len("state/") :] if name.startswith("state/") else name
    return contained(target, relative)


@dataclass(frozen=True)
class LivePlaces:
    """Where the live installation keeps what lives outside its state dir, resolved now."""

    layout: StateLayout
    registry: dict[str, str]  # agent id -> absolute path of its live database


def in_place_destination(
    member: Member, places: LivePlaces, manifest: Manifest
) -> tuple[Path | None, str]:
    """(where the member goes in the live installation, "") or (None, why it is skipped)."""
    layout = places.layout
    name = member.archive_path
    if name.startswith("state/"):
        return contained(layout.state_dir, name[len("state/") :]), ""
    source = os.path.normpath(member.source_path)
    if member.kind == "database":
        live = places.registry.get(member.agent_id or "") if member.role == "agent" else None
        if live is None:
            return None, "no agent database of that id is registered in the live installation"
        return Path(live), ""
    config = manifest.config_path
    if member.file_kind == "config" and (config is None or source == os.path.normpath(config)):
        return layout.config_path, ""
    # An archive older than the credentials_dir field: credentials already where they go.
    creds = manifest.credentials_dir or os.fspath(layout.credentials_dir)
    if creds and lexically_within(source, creds) and source != os.path.normpath(creds):
        return contained(layout.credentials_dir, os.path.relpath(source, creds)), ""
    if creds and source == os.path.normpath(creds) and member.kind == "dir":
        return layout.credentials_dir, ""
    return None, "outside the places the live installation resolves now"


def live_places(layout: StateLayout) -> LivePlaces:
    """Where the live installation keeps its agent databases now (its registry, as discovery
    reads it), for the destinations of external members and the journal's checks."""
    inv = discover(layout)
    registry = {
        d.agent_id: os.fspath(d.path) for d in inv.databases if d.role == "agent" and d.agent_id
    }
    return LivePlaces(layout, registry)


def allowed(places: LivePlaces, path: str) -> bool:
    """May an in-place restore (or its recovery) write at `path`?"""
    layout = places.layout
    norm = os.path.normpath(path)
    return (
        lexically_within(norm, layout.state_dir)
        or norm == os.path.normpath(layout.config_path)
        or lexically_within(norm, layout.credentials_dir)
        or any(norm == os.path.normpath(p) for p in places.registry.values())
    )
