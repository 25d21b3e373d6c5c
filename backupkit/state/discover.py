"""Discovery: what a backup of this state dir would capture, and why. Reads only.

Everything is found by walking the state dir without following symlinks, plus the rows of
`agent_databases` in the global database (which may point outside the state dir). Nothing here
opens a database in a way that could create a file (see sqlite/connect.py, open_readonly).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..archive.manifest import FileKind, Role, SkippedEntry
from ..archive.policy import name_defect
from ..errors import from_os_error
from ..fsutil import is_within
from .layout import (
    AGENT_DB_NAME,
    GLOBAL_DB_REL,
    JOURNAL_NAME,
    LOCK_NAME,
    RESTORE_TEMP_PREFIX,
    StateLayout,
)
from .registry import read_registry
from .rules import (
    LEGACY_NAMES,
    LEGACY_SUFFIXES,
    excluded,
    is_database,
    is_workspace,
    looks_like_database,
    own_state_file,
    sidecar_reason,
    special_reason,
)


@dataclass
class DatabaseSource:
    path: Path
    archive_path: str
    role: Role
    agent_id: str | None
    found_by: str
    size_bytes: int


@dataclass
class FileSource:
    path: Path
    archive_path: str
    kind: FileKind
    size_bytes: int
    mode: int


@dataclass
class LinkSource:
    path: Path
    archive_path: str
    target: str
    outside_state_dir: bool


@dataclass
class DirSource:
    path: Path
    archive_path: str
    mode: int


@dataclass
class Inventory:
    layout: StateLayout
    databases: list[DatabaseSource] = field(default_factory=list)
    files: list[FileSource] = field(default_factory=list)
    links: list[LinkSource] = field(default_factory=list)
    directories: list[DirSource] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(d.size_bytes for d in self.databases) + sum(f.size_bytes for f in self.files)


def external_archive_path(path: Path) -> str:
    """Where an item from outside the state dir lives in the archive: its absolute path under
    `external/`."""
    return "external/" + PurePosixPath(os.path.abspath(path)).as_posix().lstrip("/")


def _state_archive_path(rel: PurePosixPath) -> str:
    return f"state/{rel.as_posix()}"


class _Walker:
    """One pass over a directory tree, sorting each entry into the inventory."""

    def __init__(
        self,
        inv: Inventory,
        *,
        excludes: tuple[str, ...],
        include_workspaces: bool,
    ) -> None:
        self.inv = inv
        self.excludes = excludes
        self.include_workspaces = include_workspaces
        self.state_dir = inv.layout.state_dir
        self.sqlite_candidates: list[tuple[Path, PurePosixPath, int]] = []

    def walk(
        self,
        root: Path,
        rel_root: PurePosixPath | None,
        archive_of: Callable[[Path, PurePosixPath], str],
        kind_of: Callable[[PurePosixPath], FileKind],
    ) -> None:
        stack: list[tuple[Path, PurePosixPath]] = [(root, rel_root or PurePosixPath("."))]
        while stack:
            directory, rel_dir = stack.pop()
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except FileNotFoundError:
                continue  # removed since its parent was read: there is nothing in it to back up
            except OSError as err:
                raise from_os_error(err, "reading the state") from err
            for entry in entries:
                path = Path(entry.path)
                rel = (
                    rel_dir / entry.name
                    if rel_dir != PurePosixPath(".")
                    else PurePosixPath(entry.name)
                )
                try:
                    st = entry.stat(follow_symlinks=False)
                    self._sort(path, rel, st, archive_of, kind_of, stack)
                except FileNotFoundError:
                    continue  # gone between the listing and the look (a journal, a temp file)
                except OSError as err:
                    raise from_os_error(err, "reading the state") from err

    def _skip(self, path: Path, reason: str) -> None:
        self.inv.skipped.append(SkippedEntry(source_path=os.fspath(path), reason=reason))

    def _sort(
        self,
        path: Path,
        rel: PurePosixPath,
        st: os.stat_result,
        archive_of: Callable[[Path, PurePosixPath], str],
        kind_of: Callable[[PurePosixPath], FileKind],
        stack: list[tuple[Path, PurePosixPath]],
    ) -> None:
        if excluded(rel, self.excludes):
            self._skip(path, "excluded")
            return
        in_state = archive_of is _in_state_archive
        if in_state and not self.include_workspaces and is_workspace(rel):
            self._skip(path, "no-workspaces")
            return
        mode = st.st_mode
        # The one member policy decides what an archive may hold; what it would refuse is never
        # packed (a user file named like backupkit's own, say), so every archive a backup
        # writes is one verify accepts.
        if name_defect(archive_of(path, rel)) and not own_state_file(rel, in_state):
            self._skip(path, "reserved-name")
            return
        if stat.S_ISLNK(mode):
            target = os.readlink(path)
            resolved = os.path.normpath(os.path.join(path.parent, target))
            self.inv.links.append(
                LinkSource(
                    path=path,
                    archive_path=archive_of(path, rel),
                    target=target,
                    outside_state_dir=not is_within(Path(resolved), self.state_dir),
                )
            )
            return
        if stat.S_ISDIR(mode):
            self.inv.directories.append(
                DirSource(path=path, archive_path=archive_of(path, rel), mode=stat.S_IMODE(mode))
            )
            stack.append((path, rel))
            return
        special = special_reason(mode)
        if special:
            self._skip(path, special)
            return
        if in_state and rel == PurePosixPath(LOCK_NAME):
            self._skip(path, "lock-file")
            return
        if in_state and (
            (len(rel.parts) == 1 and rel.name.startswith(JOURNAL_NAME))
            or rel.name.startswith(RESTORE_TEMP_PREFIX)
        ):
            self._skip(path, "restore-in-progress")
            return
        sidecar = sidecar_reason(path, rel, in_state)
        if sidecar:
            self._skip(path, sidecar)
            return
        if in_state and (rel.name.endswith(".sqlite") or looks_like_database(path, st.st_size)):
            self.sqlite_candidates.append((path, rel, st.st_size))
            return
        self.inv.files.append(
            FileSource(
                path=path,
                archive_path=archive_of(path, rel),
                kind=kind_of(rel),
                size_bytes=st.st_size,
                mode=stat.S_IMODE(mode),
            )
        )


def _in_state_archive(_path: Path, rel: PurePosixPath) -> str:
    return _state_archive_path(rel)


def _external_archive(path: Path, _rel: PurePosixPath) -> str:
    return external_archive_path(path)


def _registry_rows(global_db: Path, inv: Inventory) -> list[tuple[str, str]]:
    """(agent_id, path) rows of `agent_databases`; a registry that cannot be read is a note."""
    try:
        return [(r.agent_id, r.path) for r in read_registry(global_db)]
    except (sqlite3.Error, OSError) as err:
        inv.notes.append(f"could not read agent_databases from {global_db}: {err}")
        return []


def discover(
    layout: StateLayout,
    *,
    include_workspaces: bool = True,
    excludes: Iterable[str] = (),
) -> Inventory:
    """Find every database, file, link and directory a backup of `layout` would hold."""
    inv = Inventory(layout=layout)
    state = layout.state_dir
    patterns = tuple(excludes)
    walker = _Walker(inv, excludes=patterns, include_workspaces=include_workspaces)

    def state_kind(rel: PurePosixPath) -> FileKind:
        path = state / rel
        if path == layout.config_path:
            return "config"
        if is_within(path, layout.credentials_dir):
            return "credential"
        if rel.name == "auth-profiles.json":
            return "auth-profile"
        if is_workspace(rel):
            return "workspace"
        if rel.name in LEGACY_NAMES or rel.name.endswith(LEGACY_SUFFIXES):
            return "legacy"
        return "state"

    walker.walk(state, None, _in_state_archive, state_kind)

    if layout.config_path.is_file() and not is_within(layout.config_path, state):
        st = layout.config_path.stat()
        inv.files.append(
            FileSource(
                path=layout.config_path,
                archive_path=external_archive_path(layout.config_path),
                kind="config",
                size_bytes=st.st_size,
                mode=stat.S_IMODE(st.st_mode),
            )
        )
    creds = layout.credentials_dir
    if creds.is_dir() and not is_within(creds, state):
        st = creds.stat()
        inv.directories.append(
            DirSource(
                path=creds, archive_path=external_archive_path(creds), mode=stat.S_IMODE(st.st_mode)
            )
        )
        walker.walk(creds, None, _external_archive, lambda _rel: "credential")

    _classify_databases(inv, walker.sqlite_candidates)
    return inv


def _classify_databases(inv: Inventory, candidates: list[tuple[Path, PurePosixPath, int]]) -> None:
    layout = inv.layout
    state = layout.state_dir
    by_real: dict[str, DatabaseSource] = {}
    for path, rel, size in candidates:
        parts = rel.parts
        if rel == PurePosixPath(GLOBAL_DB_REL.as_posix()):
            role: Role = "global"
            found_by = "global database path"
            agent_id = None
        elif (
            len(parts) == 4
            and parts[0] == "agents"
            and parts[2] == "agent"
            and parts[3] == AGENT_DB_NAME
        ):
            role, found_by, agent_id = "agent", f"agent directory agents/{parts[1]}", None
        else:
            role, found_by, agent_id = "other", "SQLite database under the state dir", None
        by_real[os.path.realpath(path)] = DatabaseSource(
            path=path,
            archive_path=_state_archive_path(rel),
            role=role,
            agent_id=agent_id,
            found_by=found_by,
            size_bytes=size,
        )

    if layout.global_db.is_file():
        for agent_id, raw in _registry_rows(layout.global_db, inv):
            if "\x00" in raw or "\n" in raw:
                inv.notes.append(f"agent_databases lists an unusable path {raw!r} for {agent_id}")
                continue
            registered = Path(raw) if os.path.isabs(raw) else state / raw
            real = os.path.realpath(registered)
            known = by_real.get(real)
            if known is not None:
                known.agent_id = known.agent_id or agent_id
                if known.role == "other":
                    known.role = "agent"
                known.found_by += " and agent_databases"
                continue
            if is_within(Path(real), state):
                # Inside the state dir but not walked: the user excluded it.
                continue
            unusable = None
            if not os.path.isfile(real):
                unusable = ("missing", "it is missing or not a regular file")
            elif not is_database(Path(real)):
                unusable = ("not-a-database", "it is not a SQLite database: not captured")
            if unusable is not None:
                reason, why = unusable
                inv.skipped.append(SkippedEntry(source_path=os.fspath(registered), reason=reason))
                inv.notes.append(f"agent_databases lists {registered} for {agent_id}, but {why}")
                continue
            source = Path(os.path.abspath(registered))
            by_real[real] = DatabaseSource(
                path=source,
                archive_path=external_archive_path(source),
                role="agent",
                agent_id=agent_id,
                found_by="agent_databases row (outside the state dir)",
                size_bytes=os.path.getsize(real),
            )
    else:
        inv.notes.append(f"global database {layout.global_db} not found")

    order = {"global": 0, "agent": 1, "other": 2}
    inv.databases = sorted(by_real.values(), key=lambda d: (order[d.role], d.archive_path))
