"""`restore --target DIR`: rebuild a state dir in a missing or empty directory.

Nothing is written outside DIR. While the restore runs, DIR holds `.backupkit-restore-incomplete`,
removed as the last step: a directory a killed run left behind says so, and no later backup or
restore takes it for a state. A whole-archive restore reads the archive once: every member is
spooled into a private directory inside DIR as it streams by, each database is checked as soon
as its last byte lands, and files are placed only once the whole archive has matched its
manifest. `--agent` and `--dry-run` prove the archive first, then extract only what was chosen.
On failure DIR is left as it was found.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from ..archive.crypt import Identities
from ..archive.manifest import Manifest
from ..archive.source import ArchiveRef
from ..errors import InputError
from ..fsutil import atomic_write, fsync_dir, remove_tree
from ..progress import ProgressCallback, emit
from ..state.layout import INCOMPLETE_MARK
from .databases import finish_databases
from .extract import Placement, extract
from .place import (
    first_missing,
    place_dir,
    place_file,
    place_link,
    seal_directories,
    take_owner,
)
from .plan import Member, PlannedItem, RestoreReport, select, target_destination
from .proof import proven_scan
from .spool import Spool


def restore_to_target(
    archive: ArchiveRef,
    target: Path,
    *,
    dry_run: bool,
    agents: list[str] | None,
    progress: ProgressCallback | None,
    identities: Identities | None = None,
) -> RestoreReport:
    if target.exists() and not target.is_dir():
        raise InputError(
            f"restore target {target} is a file, not a directory: give a missing or empty directory"
        )
    if (target / INCOMPLETE_MARK).exists():
        raise InputError(
            f"restore target {target} holds a restore that never finished: remove it and "
            "restore again"
        )
    if target.exists() and any(target.iterdir()):
        raise InputError(f"restore target {target} is not empty: give a missing or empty directory")
    manifest: Manifest | None = None
    members: list[Member] = []
    if dry_run or agents:
        # A plan, or a few agents out of many: prove the archive first, then extract only what
        # was chosen (two reads, but nothing unchosen is ever written).
        manifest = proven_scan(archive, progress, identities=identities).manifest
        members = select(manifest, agents)
        report = _report(archive, target, dry_run, members)
        if dry_run:
            return report
    # The first directory this restore creates (the target or a missing parent of it) and, for an
    # existing empty target, its mode: a failed restore puts both back as they were found.
    created = first_missing(target)
    old_mode = None if created else stat.S_IMODE(target.stat().st_mode)
    try:
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o700)
        mark = target / INCOMPLETE_MARK
        atomic_write(mark, os.fsencode(str(archive)) + b"\n")
        if manifest is not None:
            _extract_selected(archive, target, manifest, members, report, progress, identities)
        else:
            report = _restore_whole(archive, target, progress, identities)
        os.chmod(target, 0o755)
        mark.unlink()  # the last step: only now is the directory a whole state
        fsync_dir(target)
    except BaseException:
        if created is not None:
            remove_tree(created)
        else:
            for child in list(target.iterdir()):
                remove_tree(child)
            with contextlib.suppress(OSError):
                os.chmod(target, old_mode or 0o755)
        raise
    return report


def _report(
    archive: ArchiveRef, target: Path, dry_run: bool, members: list[Member]
) -> RestoreReport:
    items = [
        PlannedItem(
            "create",
            os.fspath(target_destination(m, target)),
            m.kind,
            m.size_bytes,
            m.archive_path,
        )
        for m in members
    ]
    return RestoreReport("target", archive, target, dry_run, items)


def _dir_modes(members: list[Member], target: Path) -> list[tuple[Path, int]]:
    return [(target_destination(m, target), m.mode) for m in members if m.kind == "dir"]


def _restore_whole(
    archive: ArchiveRef,
    target: Path,
    progress: ProgressCallback | None,
    identities: Identities | None,
) -> RestoreReport:
    spool = Spool(target / f".backupkit-restore-{secrets.token_hex(4)}")
    spool.root.mkdir(mode=0o700)
    try:
        proof = proven_scan(archive, progress, spool, identities)
        manifest, checks = proof.manifest, proof.checks
        spool.finish()
        members = select(manifest, None)
        report = _report(archive, target, False, members)
        links = []
        ordered = sorted(members, key=lambda m: m.archive_path.count("/"))
        for i, m in enumerate(ordered):
            emit(progress, "restore", i, len(ordered), m.archive_path)
            dest = target_destination(m, target)
            if m.kind in ("database", "file"):
                place_file(m.archive_path, spool.paths[m.archive_path], dest, m.mode)
            elif m.kind == "dir":
                place_dir(m.archive_path, dest)
            else:
                links.append((m, dest))
        spool.root.rmdir()  # empty now: anything left in it would be a member nobody placed
        finish_databases(
            report,
            manifest,
            members,
            lambda m: target_destination(m, target),
            target,
            checks=checks,
        )
        for m, dest in links:
            place_link(m.archive_path, m.target, dest)
        for m in members:
            if m.archive_path in proof.owners:
                take_owner(target_destination(m, target), *proof.owners[m.archive_path])
        seal_directories(target, _dir_modes(members, target))
    finally:
        spool.close()
        remove_tree(spool.root)
    emit(progress, "restore", len(members), len(members))
    return report


def _extract_selected(
    archive: ArchiveRef,
    target: Path,
    manifest: Manifest,
    members: list[Member],
    report: RestoreReport,
    progress: ProgressCallback | None,
    identities: Identities | None,
) -> None:
    placements = {}
    for m in members:
        dest = target_destination(m, target)
        if m.kind in ("database", "file"):
            placements[m.archive_path] = Placement(dest, "file", m.mode, m.size_bytes, m.sha256)
        elif m.kind == "symlink":
            placements[m.archive_path] = Placement(dest, "symlink", target=m.target)
        else:
            placements[m.archive_path] = Placement(dest, "dir", m.mode)
    extract(archive, placements, identities, progress)
    finish_databases(report, manifest, members, lambda m: target_destination(m, target), target)
    seal_directories(target, _dir_modes(members, target))
