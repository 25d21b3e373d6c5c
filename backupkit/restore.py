"""Restore: rebuild a state dir from an archive, into a fresh directory or in place.

Both modes refuse an archive with any defect before anything takes its final place. `--target DIR`
writes only under DIR (items that lived outside the state dir go to `DIR/external/<absolute
path>`): a whole-archive restore streams every member into a private directory in DIR while it
checks the archive, and renames them into place only once all of it is proven; on failure DIR is
left as it was found. `--in-place` takes a verified safety snapshot of the live state, stages
every new file beside its destination, and swaps them in under a journal (see journal.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .backup import create_backup
from .discover import discover
from .errors import BusyError, EnvironmentFault, InputError, IntegrityError, from_os_error
from .extract import Placement, extract
from .fsutil import fsync_dir
from .journal import Entry, Journal, finish, recover, rollback_staging, swap_entry, temp_sibling
from .ledger import Run, read_runs, record_runs
from .locations import StateLayout, existing_layout, is_within
from .lock import state_lock
from .manifest import Manifest
from .progress import ProgressCallback, emit
from .sqlite_files import wal_in_use
from .verify import DatabaseCheck, Spool, check_database_file, database_defects, scan_archive

SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
Action = Literal["create", "replace", "keep", "remove"]


@dataclass
class PlannedItem:
    action: Action
    path: str
    kind: str  # database, file, symlink, dir
    size_bytes: int
    archive_path: str | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class RestoreReport:
    mode: Literal["target", "in-place"]
    archive: Path
    state_dir: Path
    dry_run: bool
    items: list[PlannedItem]
    safety_snapshot: Path | None = None
    recovered: str | None = None
    databases: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "replace": 0, "keep": 0, "remove": 0}
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "archive": os.fspath(self.archive),
            "state_dir": os.fspath(self.state_dir),
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "items": [i.to_dict() for i in self.items],
            "safety_snapshot": os.fspath(self.safety_snapshot) if self.safety_snapshot else None,
            "recovered": self.recovered,
            "databases": self.databases,
            "warnings": self.warnings,
            "notes": self.notes,
        }


@dataclass
class _Member:
    """One archive member chosen for restore, with where it goes."""

    archive_path: str
    source_path: str
    kind: str
    mode: int
    size_bytes: int = 0
    sha256: str = ""
    target: str = ""


def _safe_mode(mode: int) -> int:
    # Permission bits (and sticky) only: a setuid or setgid bit, or a number no mode can be, is
    # never restored from an archive.
    return mode & 0o1777


def _select(manifest: Manifest, agents: list[str] | None) -> list[_Member]:
    members: list[_Member] = []
    for d in manifest.databases:
        members.append(
            _Member(
                d.archive_path,
                d.source_path,
                "database",
                _safe_mode(d.mode or 0o600),
                d.size_bytes,
                d.sha256,
            )
        )
    for f in manifest.files:
        members.append(
            _Member(
                f.archive_path, f.source_path, "file", _safe_mode(f.mode), f.size_bytes, f.sha256
            )
        )
    for link in manifest.links:
        members.append(
            _Member(link.archive_path, link.source_path, "symlink", 0o777, target=link.target)
        )
    for d in manifest.directories:
        members.append(_Member(d.archive_path, d.source_path, "dir", _safe_mode(d.mode)))
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


def _dest_target(member: _Member, target: Path) -> Path:
    name = member.archive_path
    if name.startswith("state/"):
        return target / name[len("state/") :]
    return target / name  # external/<absolute path>


def _dest_in_place(member: _Member, state: Path) -> Path:
    name = member.archive_path
    if name.startswith("state/"):
        return state / name[len("state/") :]
    return Path(member.source_path)


def _check_contained(path: Path, root: Path) -> None:
    norm = os.path.normpath(path)
    if not (norm == os.fspath(root) or norm.startswith(os.fspath(root).rstrip("/") + "/")):
        raise IntegrityError(f"refusing to write {path}: outside {root}")


def _rewrite_registry(
    global_db: Path, mapping: dict[str, str], old_state: str, new_state: Path
) -> int:
    """Point `agent_databases.path` at where each database now stands; keep every other column."""
    conn = sqlite3.connect(f"file:{global_db}?mode=rw", uri=True, isolation_level=None)
    changed = 0
    try:
        has = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='agent_databases'"
        ).fetchone()
        if not has:
            return 0
        conn.execute("BEGIN IMMEDIATE")
        for rowid, raw in conn.execute("SELECT rowid, path FROM agent_databases").fetchall():
            if not raw:
                continue
            old = raw if os.path.isabs(raw) else os.path.join(old_state, raw)
            old = os.path.normpath(old)
            new = mapping.get(old)
            if new is None and (old == old_state or old.startswith(old_state.rstrip("/") + "/")):
                new = os.fspath(new_state / os.path.relpath(old, old_state))
            if new is not None and new != raw:
                conn.execute("UPDATE agent_databases SET path=? WHERE rowid=?", (new, rowid))
                changed += 1
        conn.execute("COMMIT")
    finally:
        conn.close()
    return changed


def restore_archive(
    archive: str | os.PathLike[str],
    *,
    target: str | os.PathLike[str] | None = None,
    in_place: bool = False,
    dry_run: bool = False,
    agents: list[str] | None = None,
    force: bool = False,
    state_dir: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    delete_extra: bool = False,
    progress: ProgressCallback | None = None,
) -> RestoreReport:
    """Restore `archive` into `target` (a missing or empty dir) or, with `in_place=True`, over
    the live state dir. Returns what was (or, with `dry_run`, would be) created, replaced, kept
    and removed."""
    if (target is None) == (not in_place):
        raise InputError("restore needs exactly one of --target DIR or --in-place")
    path = Path(os.path.abspath(archive))
    if target is not None:
        return _restore_to_target(
            path, Path(os.path.abspath(target)), dry_run=dry_run, agents=agents, progress=progress
        )
    layout = existing_layout(state_dir)
    return _restore_in_place(
        path,
        layout,
        dry_run=dry_run,
        agents=agents,
        force=force,
        output=output,
        delete_extra=delete_extra,
        progress=progress,
    )


def _verified_manifest(archive: Path, progress: ProgressCallback | None) -> Manifest:
    emit(progress, "verify", 0, 1, os.fspath(archive))
    # Databases are not opened here: every one is checked where it is placed, with the same
    # checks, after its bytes were matched against the manifest's sha256 on the way in.
    return _proven_scan(archive, progress, None)[0]


def _proven_scan(
    archive: Path, progress: ProgressCallback | None, spool: Spool | None
) -> tuple[Manifest, dict[str, DatabaseCheck]]:
    """Scan the archive (keeping its members in `spool`, if given); refuse it on any defect."""
    try:
        manifest, defects, checks, _n = scan_archive(
            archive, progress=progress, check_databases=spool is not None, spool=spool
        )
    except IntegrityError as err:
        defects = [str(err)]
    if defects:
        more = f" (+{len(defects) - 1} more)" if len(defects) > 1 else ""
        raise IntegrityError(
            f"archive {archive} failed verification, not restoring: {defects[0]}{more}"
        )
    return manifest, checks


def _restore_to_target(
    archive: Path,
    target: Path,
    *,
    dry_run: bool,
    agents: list[str] | None,
    progress: ProgressCallback | None,
) -> RestoreReport:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"restore target {target} is not empty: give a missing or empty directory")
    if dry_run or agents:
        # A plan, or a few agents out of many: prove the archive first, then extract only what
        # was chosen (two reads, but nothing unchosen is ever written).
        manifest = _verified_manifest(archive, progress)
        members = _select(manifest, agents)
        report = _target_report(archive, target, dry_run, members)
        if dry_run:
            return report
    # The first directory this restore creates (the target or a missing parent of it) and, for an
    # existing empty target, its mode: a failed restore puts both back as they were found.
    created = _first_missing(target)
    old_mode = None if created else stat.S_IMODE(target.stat().st_mode)
    try:
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o700)
        if agents:
            _extract_selected(archive, target, manifest, members, report, progress)
        else:
            report = _restore_whole(archive, target, progress)
        os.chmod(target, 0o755)
        fsync_dir(target)
    except BaseException:
        if created is not None:
            _remove_tree(created)
        else:
            for child in list(target.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    _remove_tree(child)
                else:
                    with contextlib.suppress(OSError):
                        child.unlink()
            with contextlib.suppress(OSError):
                os.chmod(target, old_mode or 0o755)
        raise
    return report


def _first_missing(path: Path) -> Path | None:
    missing = None
    while not os.path.lexists(path):
        missing = path
        if path.parent == path:
            break
        path = path.parent
    return missing


def _remove_tree(path: Path) -> None:
    """Remove what a failed restore wrote, even under a directory the archive made unreadable
    (its mode was already applied): reopen every directory for its owner first."""
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, d), 0o700, follow_symlinks=False)
    shutil.rmtree(path, ignore_errors=True)


def _target_report(
    archive: Path, target: Path, dry_run: bool, members: list[_Member]
) -> RestoreReport:
    items = []
    for m in members:
        dest = _dest_target(m, target)
        _check_contained(dest, target)
        items.append(PlannedItem("create", os.fspath(dest), m.kind, m.size_bytes, m.archive_path))
    return RestoreReport("target", archive, target, dry_run, items)


def _restore_whole(archive: Path, target: Path, progress: ProgressCallback | None) -> RestoreReport:
    """Read the archive once: every member is spooled into the target as it streams by, and
    each database is checked in a worker thread as soon as its last byte is written, while the
    stream goes on. Only when the whole archive has matched its manifest (names, sizes, sha256,
    the frame's checksum and seal, every database's checks) are the files renamed into place."""
    emit(progress, "extract", 0, 1, os.fspath(archive))
    spool = Spool(target / f".backupkit-restore-{secrets.token_hex(4)}")
    spool.root.mkdir(mode=0o700)
    try:
        manifest, checks = _proven_scan(archive, progress, spool)
        spool.finish()
        members = _select(manifest, None)
        report = _target_report(archive, target, False, members)
        links = _place_spooled(members, spool, target)
        spool.root.rmdir()  # empty now: anything left in it would be a member nobody placed
        _finish_databases(
            report,
            manifest,
            members,
            lambda m: _dest_target(m, target),
            target,
            checks=checks,
        )
        _place_links(links)
        _seal_directories(members, target)
    finally:
        spool.close()
        shutil.rmtree(spool.root, ignore_errors=True)
    emit(progress, "extract", 1, 1, os.fspath(archive))
    return report


def _place_spooled(
    members: list[_Member], spool: Spool, target: Path
) -> list[tuple[_Member, Path]]:
    """Rename each proven file from the spool to its place; create directories. Returns the
    symlinks, which go in last. A path the archive itself makes impossible (a file listed under
    another file, the same place twice) is the archive's defect, not the machine's."""
    links = []
    for m in sorted(members, key=lambda m: m.archive_path.count("/")):
        dest = _dest_target(m, target)
        try:
            if m.kind in ("database", "file"):
                dest.parent.mkdir(parents=True, exist_ok=True)
                if os.path.lexists(dest):
                    raise IntegrityError(f"{m.archive_path}: restored twice")
                os.rename(spool.paths[m.archive_path], dest)
                os.chmod(dest, m.mode)
            elif m.kind == "dir":
                dest.mkdir(parents=True, exist_ok=True)
            else:
                links.append((m, dest))
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as err:
            raise IntegrityError(f"{m.archive_path}: cannot be placed: {err.strerror}") from err
        except OSError as err:
            raise from_os_error(err, "restoring a file") from err
    return links


def _place_links(links: list[tuple[_Member, Path]]) -> None:
    # Last of all entries, so nothing was ever written through a link the archive planted.
    for m, dest in links:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(m.target, dest)
        except (FileExistsError, NotADirectoryError) as err:
            raise IntegrityError(f"{m.archive_path}: cannot be placed: {err.strerror}") from err
        except OSError as err:
            raise from_os_error(err, "restoring a symlink") from err


def _seal_directories(members: list[_Member], target: Path) -> None:
    """Make every entry durable, then give directories their modes. Every directory is synced,
    deepest first, before any mode is applied (a mode without owner read would refuse the
    sync); modes go on deepest first, so no directory is closed before its children exist."""
    try:
        dirs = [Path(root) for root, _d, _f in os.walk(target)]
        for d in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
            fsync_dir(d)
        for m in sorted(
            (m for m in members if m.kind == "dir"),
            key=lambda m: m.archive_path.count("/"),
            reverse=True,
        ):
            os.chmod(_dest_target(m, target), m.mode)
    except OSError as err:
        raise from_os_error(err, "restoring directories") from err


def _extract_selected(
    archive: Path,
    target: Path,
    manifest: Manifest,
    members: list[_Member],
    report: RestoreReport,
    progress: ProgressCallback | None,
) -> None:
    placements = {}
    for m in members:
        dest = _dest_target(m, target)
        if m.kind in ("database", "file"):
            placements[m.archive_path] = Placement(dest, "file", m.mode, m.size_bytes, m.sha256)
        elif m.kind == "symlink":
            placements[m.archive_path] = Placement(dest, "symlink", target=m.target)
        else:
            placements[m.archive_path] = Placement(dest, "dir", m.mode)
    emit(progress, "extract", 0, len(placements))
    extract(archive, placements)
    _finish_databases(report, manifest, members, lambda m: _dest_target(m, target), target)
    _seal_directories(members, target)


def _finish_databases(
    report: RestoreReport,
    manifest: Manifest,
    members: list[_Member],
    dest_of,  # type: ignore[no-untyped-def]
    new_state: Path,
    write_path=None,  # type: ignore[no-untyped-def]
    checks: dict[str, DatabaseCheck] | None = None,
) -> None:
    """Rewrite the registry in the restored global database, then prove every placed database
    with the checks verify runs (in parallel: sqlite3 releases the GIL). `checks` made on the
    same bytes while they streamed in are taken as they are, except for a database the registry
    rewrite changed, which is checked again."""
    write_path = write_path or dest_of
    mapping = {
        os.path.normpath(m.source_path): os.fspath(dest_of(m))
        for m in members
        if m.kind == "database"
    }
    entries = {d.archive_path: d for d in manifest.databases}
    placed = [m for m in members if m.kind == "database"]
    for m in placed:
        where = write_path(m)
        for suffix in SIDE_SUFFIXES:
            side = Path(f"{where}{suffix}")
            if side.exists() and side.stat().st_size > 0:
                raise IntegrityError(f"a non-empty {side} stands beside a restored database")
        if entries[m.archive_path].role == "global":
            changed = _rewrite_registry(where, mapping, manifest.state_dir, new_state)
            if changed:
                report.notes.append(f"rewrote {changed} agent_databases paths to new locations")
                if checks is not None:
                    checks = {k: v for k, v in checks.items() if k != m.archive_path}
    known = checks or {}
    todo = [m for m in placed if m.archive_path not in known]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        fresh = dict(
            zip(
                (m.archive_path for m in todo),
                pool.map(lambda m: check_database_file(write_path(m), m.archive_path), todo),
                strict=True,
            )
        )
    for m in placed:
        check = known.get(m.archive_path) or fresh[m.archive_path]
        report.databases.append({"path": os.fspath(dest_of(m)), "integrity": check.integrity})
        defects = database_defects(entries[m.archive_path], check)
        if defects:
            raise IntegrityError(f"restored database {dest_of(m)} is not sound: {defects[0]}")


def _live_writers(layout: StateLayout) -> list[Path]:
    inv = discover(layout)
    return [d.path for d in inv.databases if wal_in_use(d.path)]


def _restore_in_place(
    archive: Path,
    layout: StateLayout,
    *,
    dry_run: bool,
    agents: list[str] | None,
    force: bool,
    output: str | os.PathLike[str] | None,
    delete_extra: bool,
    progress: ProgressCallback | None,
) -> RestoreReport:
    state = layout.state_dir
    if dry_run:
        return _plan_in_place(archive, layout, agents, delete_extra, progress)[0]
    with state_lock(layout.lock_path):
        recovered = recover(state)
        report, manifest, members, extras = _plan_in_place(
            archive, layout, agents, delete_extra, progress
        )
        report.recovered = recovered
        busy = _live_writers(layout)
        if busy and not force:
            raise BusyError(
                f"{busy[0]} is open in another process (is the gateway running?): stop it, or "
                "pass --force"
            )
        snap = create_backup(
            state,
            output=output,
            reason="pre-restore",
            verify=True,
            progress=progress,
            _hold_lock=False,
        )
        report.safety_snapshot = snap.archive
        if not snap.ok:
            unproven = [p for p in snap.problems if " is not proven: " in p]
            if len(unproven) != len(snap.problems):
                raise IntegrityError(
                    f"safety snapshot {snap.archive} could not be proven, not restoring: "
                    f"{snap.problems[0]}"
                )
            report.warnings.append(
                "the live state has damaged databases; the safety snapshot keeps them as they are"
            )
        ledger = read_runs(layout.global_db) if layout.global_db.is_file() else []
        _swap_in(archive, report, manifest, members, extras, layout, progress)
        _carry_ledger(layout, ledger)
    return report


def _carry_ledger(layout: StateLayout, runs: list[Run]) -> None:
    """The swap put the archive's ledger in place; add back every row the live ledger had, so
    the history of backups and verifies (and the way back to the safety snapshot) survives."""
    warning = record_runs(layout.global_db, runs, replace=False)
    if warning:
        raise EnvironmentFault(f"restored, but the backup history was not carried over: {warning}")


def _plan_in_place(
    archive: Path,
    layout: StateLayout,
    agents: list[str] | None,
    delete_extra: bool,
    progress: ProgressCallback | None,
) -> tuple[RestoreReport, Manifest, list[_Member], list[PlannedItem]]:
    state = layout.state_dir
    manifest = _verified_manifest(archive, progress)
    members = _select(manifest, agents)
    items: list[PlannedItem] = []
    wanted: set[str] = set()
    for m in members:
        dest = _dest_in_place(m, state)
        wanted.add(os.path.normpath(dest))
        if m.archive_path.startswith("state/"):
            _check_contained(dest, state)
            _refuse_symlinked_parents(dest, state)
        exists = os.path.lexists(dest)
        if m.kind == "dir":
            action: Action = "keep" if exists else "create"
        else:
            action = "replace" if exists else "create"
        items.append(PlannedItem(action, os.fspath(dest), m.kind, m.size_bytes, m.archive_path))
    extras: list[PlannedItem] = []
    inv = discover(layout)
    scope = [i.path for i in items if i.kind == "dir"] if agents else None
    live = [(d.path, "database", d.size_bytes) for d in inv.databases]
    live += [(f.path, "file", f.size_bytes) for f in inv.files]
    live += [(link.path, "symlink", 0) for link in inv.links]
    for path, kind, size in live:
        if os.path.normpath(path) in wanted:
            continue
        if scope is not None and not any(is_within(path, Path(s)) for s in scope):
            continue
        action = "remove" if delete_extra else "keep"
        item = PlannedItem(action, os.fspath(path), kind, size, None)
        extras.append(item)
    report = RestoreReport("in-place", archive, state, False, items + extras)
    if Journal.load(state) is not None:
        report.warnings.append("an interrupted restore is pending; the next run will finish it")
    return report, manifest, members, extras


def _refuse_symlinked_parents(dest: Path, state: Path) -> None:
    parent = dest.parent
    while parent != state and is_within(parent, state):
        if parent.is_symlink():
            raise InputError(
                f"{parent} is a symlink in the live state where the archive has a directory: "
                "move it aside and restore again"
            )
        parent = parent.parent


def _swap_in(
    archive: Path,
    report: RestoreReport,
    manifest: Manifest,
    members: list[_Member],
    extras: list[PlannedItem],
    layout: StateLayout,
    progress: ProgressCallback | None,
) -> None:
    state = layout.state_dir
    rid = secrets.token_hex(4)
    entries: list[Entry] = []
    placements: dict[str, Placement] = {}
    staged_of: dict[str, Path] = {}
    created_dirs: list[str] = []
    dir_modes: list[tuple[str, int]] = []
    for m in members:
        dest = _dest_in_place(m, state)
        if m.kind == "dir":
            dir_modes.append((os.fspath(dest), m.mode))
            continue
        staged = temp_sibling(dest, rid, "new")
        staged_of[m.archive_path] = staged
        aside = temp_sibling(dest, rid, "old") if os.path.lexists(dest) else None
        sidecars = []
        if m.kind == "database":
            sidecars = [
                (f"{dest}{s}", os.fspath(temp_sibling(Path(f"{dest}{s}"), rid, "old")))
                for s in SIDE_SUFFIXES
            ]
        if m.kind in ("database", "file"):
            placements[m.archive_path] = Placement(staged, "file", m.mode, m.size_bytes, m.sha256)
        else:
            placements[m.archive_path] = Placement(staged, "symlink", target=m.target)
        entries.append(
            Entry(os.fspath(dest), os.fspath(staged), os.fspath(aside) if aside else None, sidecars)
        )
    for item in extras:
        if item.action == "remove":
            dest = Path(item.path)
            sidecars = []
            if item.kind == "database":
                sidecars = [
                    (f"{dest}{s}", os.fspath(temp_sibling(Path(f"{dest}{s}"), rid, "old")))
                    for s in SIDE_SUFFIXES
                ]
            entries.append(
                Entry(item.path, None, os.fspath(temp_sibling(dest, rid, "old")), sidecars)
            )
    for entry in entries:
        parent = Path(entry.dest).parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        created_dirs += [os.fspath(p) for p in missing]
    journal = Journal(
        rid,
        os.fspath(archive),
        os.fspath(state),
        "staging",
        entries,
        sorted(set(created_dirs)),
        dir_modes,
        os.fspath(report.safety_snapshot) if report.safety_snapshot else None,
    )
    try:
        journal.save()
        for d in sorted(set(created_dirs), key=len):
            os.makedirs(d, mode=0o700, exist_ok=True)
        emit(progress, "extract", 0, len(placements))
        extract(archive, placements)
        by_name = {m.archive_path: m for m in members}
        _finish_databases(
            report,
            manifest,
            [by_name[n] for n in placements if by_name[n].kind == "database"],
            lambda m: _dest_in_place(m, state),
            state,
            write_path=lambda m: staged_of[m.archive_path],
        )
    except BaseException:
        rollback_staging(journal)
        raise
    try:
        journal.phase = "swapping"
        journal.save()
        for i, entry in enumerate(entries):
            swap_entry(entry)
            emit(progress, "swap", i + 1, len(entries))
        journal.phase = "committed"
        journal.save()
        finish(journal)
    except OSError as err:
        raise from_os_error(
            err, "swapping restored files into place (rerun restore to finish)"
        ) from err


def describe(report: RestoreReport) -> str:
    c = report.counts()
    verb = "would" if report.dry_run else "did"
    return (
        f"restore {report.mode} {verb}: create {c['create']}, replace {c['replace']}, "
        f"keep {c['keep']}, remove {c['remove']} in {report.state_dir}"
    )
