"""`restore --in-place`: replace the live state, after a verified safety snapshot of it.

Every new file is staged beside its destination (same directory, so the same file system), then
swapped in with renames under a journal (journal.py), old files and stale `-wal`/`-shm` moved
aside rather than deleted. Destinations are plan.py's: inside the live state dir, or where the
live installation resolves an item now; anything else is skipped and listed. An archive of
another state dir is refused unless the caller says that is intended.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..archive.crypt import Identities, Recipients
from ..archive.format import SIDECAR_SUFFIXES
from ..archive.manifest import Manifest
from ..archive.source import ArchiveRef
from ..backup.pipeline import create_backup
from ..errors import (
    BusyError,
    EnvironmentFault,
    InputError,
    IntegrityError,
    Interrupted,
    from_os_error,
)
from ..fsutil import is_within, lexically_within
from ..ops import ledger
from ..progress import ProgressCallback, emit
from ..sqlite.live import open_elsewhere, wal_in_use
from ..state.discover import discover
from ..state.layout import StateLayout
from ..state.lock import state_lock
from .databases import finish_databases
from .extract import Placement, extract
from .journal import (
    Entry,
    Journal,
    deferred_signals,
    finish,
    recover,
    rollback_staging,
    swap_entry,
    temp_sibling,
)
from .place import take_owner
from .plan import (
    Action,
    Member,
    PlannedItem,
    RestoreReport,
    in_place_destination,
    live_places,
    select,
)
from .proof import proven_scan


def _live_writers(layout: StateLayout) -> list[Path]:
    """Databases another process has open, in any journal mode: a WAL database by the lock
    every connection keeps on its -shm, any database by the descriptors in /proc."""
    paths = [d.path for d in discover(layout).databases]
    elsewhere = open_elsewhere(paths)
    return [p for p in paths if p in elsewhere or wal_in_use(p)]


def restore_in_place(
    archive: ArchiveRef,
    layout: StateLayout,
    *,
    dry_run: bool,
    agents: list[str] | None,
    force: bool,
    output: str | os.PathLike[str] | None,
    delete_extra: bool,
    other_state: bool,
    progress: ProgressCallback | None,
    identities: Identities | None = None,
    recipients: Recipients | None = None,
) -> RestoreReport:
    """`recipients`: what the safety snapshot is encrypted to (None: plaintext; the caller
    refuses that for an encrypted archive)."""
    state = layout.state_dir
    if dry_run:
        plan = _plan(archive, layout, agents, delete_extra, other_state, progress, True, identities)
        return plan[0]
    with state_lock(layout.lock_path):
        recovered = recover(layout)
        report, manifest, members, extras = _plan(
            archive, layout, agents, delete_extra, other_state, progress, False, identities
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
            recipients=recipients,
            _hold_lock=False,
        )
        report.safety_snapshot = snap.archive
        if snap.archive_problems:
            raise IntegrityError(
                f"safety snapshot {snap.archive} could not be proven, not restoring: "
                f"{snap.archive_problems[0]}"
            )
        if snap.source_problems:
            report.warnings.append(
                "the live state has damaged databases; the safety snapshot keeps them as they are"
            )
        carried = ledger.read_raw(layout.global_db)
        _swap_in(archive, report, manifest, members, extras, layout, carried, progress, identities)
    return report


def _carry_ledger(layout: StateLayout, carried: list[tuple[object, ...]]) -> None:
    """The swap put the archive's ledger in place; add back every row the live ledger had, so
    the history of backups and verifies (and the way back to the snapshot) survives."""
    warning = ledger.insert_raw(layout.global_db, carried)
    if warning:
        raise EnvironmentFault(f"restored, but the backup history was not carried over: {warning}")


def _plan(
    archive: ArchiveRef,
    layout: StateLayout,
    agents: list[str] | None,
    delete_extra: bool,
    other_state: bool,
    progress: ProgressCallback | None,
    dry_run: bool,
    identities: Identities | None,
) -> tuple[RestoreReport, Manifest, list[tuple[Member, Path]], list[PlannedItem]]:
    state = layout.state_dir
    proof = proven_scan(archive, progress, identities=identities)
    manifest = proof.manifest
    if os.path.normpath(manifest.state_dir) != os.path.normpath(state) and not other_state:
        raise InputError(
            f"archive {archive} is of the state dir {manifest.state_dir}, not {state}: pass "
            "--from-other-state to restore it here"
        )
    places = live_places(layout)
    items: list[PlannedItem] = []
    placed: list[tuple[Member, Path]] = []
    wanted: set[str] = set()
    for m in select(manifest, agents):
        dest, why = in_place_destination(m, places, manifest)
        if dest is None:
            items.append(
                PlannedItem("skip", m.source_path, m.kind, m.size_bytes, m.archive_path, why)
            )
            continue
        wanted.add(os.path.normpath(dest))
        if lexically_within(dest, state):
            _refuse_symlinked_parents(dest, state)
        exists = os.path.lexists(dest)
        action: Action
        if m.kind == "dir":
            action = "keep" if exists else "create"
        else:
            action = "replace" if exists else "create"
        items.append(PlannedItem(action, os.fspath(dest), m.kind, m.size_bytes, m.archive_path))
        placed.append((m, dest))
    extras: list[PlannedItem] = []
    inv = discover(layout)
    scope = (
        [Path(i.path) for i in items if i.kind == "dir" and i.action != "skip"] if agents else None
    )
    live = [(d.path, "database", d.size_bytes) for d in inv.databases]
    live += [(f.path, "file", f.size_bytes) for f in inv.files]
    live += [(link.path, "symlink", 0) for link in inv.links]
    for path, kind, size in live:
        if os.path.normpath(path) in wanted:
            continue
        if scope is not None and not any(is_within(path, s) for s in scope):
            continue
        extras.append(
            PlannedItem("remove" if delete_extra else "keep", os.fspath(path), kind, size, None)
        )
    report = RestoreReport("in-place", archive, state, dry_run, items + extras)
    if Journal.load(state) is not None:
        report.warnings.append("an interrupted restore is pending; the next run will finish it")
    report.owners = proof.owners
    return report, manifest, placed, extras


def _refuse_symlinked_parents(dest: Path, state: Path) -> None:
    parent = dest.parent
    while parent != state and lexically_within(parent, state):
        if parent.is_symlink():
            raise InputError(
                f"{parent} is a symlink in the live state where the archive has a directory: "
                "move it aside and restore again"
            )
        parent = parent.parent


def _sidecars(dest: Path, rid: str) -> list[tuple[str, str]]:
    return [
        (f"{dest}{s}", os.fspath(temp_sibling(Path(f"{dest}{s}"), rid, "old")))
        for s in SIDECAR_SUFFIXES
    ]


def _swap_in(
    archive: ArchiveRef,
    report: RestoreReport,
    manifest: Manifest,
    placed: list[tuple[Member, Path]],
    extras: list[PlannedItem],
    layout: StateLayout,
    carried: list[tuple[object, ...]],
    progress: ProgressCallback | None,
    identities: Identities | None,
) -> None:
    state = layout.state_dir
    rid = secrets.token_hex(4)
    entries: list[Entry] = []
    placements: dict[str, Placement] = {}
    staged_of: dict[str, Path] = {}
    dest_of: dict[str, Path] = {}
    dir_modes: list[tuple[str, int]] = []
    for m, dest in placed:
        dest_of[m.archive_path] = dest
        if m.kind == "dir":
            dir_modes.append((os.fspath(dest), m.mode))
            continue
        staged = temp_sibling(dest, rid, "new")
        staged_of[m.archive_path] = staged
        aside = temp_sibling(dest, rid, "old") if os.path.lexists(dest) else None
        if m.kind in ("database", "file"):
            placements[m.archive_path] = Placement(staged, "file", m.mode, m.size_bytes, m.sha256)
        else:
            placements[m.archive_path] = Placement(staged, "symlink", target=m.target)
        sidecars = _sidecars(dest, rid) if m.kind == "database" else []
        entries.append(
            Entry(os.fspath(dest), os.fspath(staged), os.fspath(aside) if aside else None, sidecars)
        )
    for item in extras:
        if item.action == "remove":
            dest = Path(item.path)
            sidecars = _sidecars(dest, rid) if item.kind == "database" else []
            entries.append(
                Entry(item.path, None, os.fspath(temp_sibling(dest, rid, "old")), sidecars)
            )
    created_dirs: set[str] = set()
    for entry in entries:
        parent = Path(entry.dest).parent
        while not parent.exists():
            created_dirs.add(os.fspath(parent))
            parent = parent.parent
    journal = Journal(
        rid,
        str(archive),
        os.fspath(state),
        "staging",
        entries,
        sorted(created_dirs),
        dir_modes,
        os.fspath(report.safety_snapshot) if report.safety_snapshot else None,
    )
    members = [m for m, _dest in placed]
    try:
        journal.save()
        for d in sorted(created_dirs, key=len):
            os.makedirs(d, mode=0o700, exist_ok=True)
        for m, dest in placed:
            if (
                m.kind == "dir"
                and os.fspath(dest) in created_dirs
                and m.archive_path in report.owners
            ):
                take_owner(dest, *report.owners[m.archive_path])
        extract(archive, placements, identities, progress)
        finish_databases(
            report,
            manifest,
            [m for m in members if m.kind == "database"],
            lambda m: dest_of[m.archive_path],
            state,
            write_path=lambda m: staged_of[m.archive_path],
        )
        # Once the swap begins it runs to its end: every staged file is synced, so it is a few
        # renames, and a signal that arrives meanwhile is delivered when the state is whole.
        with deferred_signals():
            journal.phase = "swapping"
            journal.save()
            for i, entry in enumerate(entries):
                swap_entry(entry)
                emit(progress, "swap", i + 1, len(entries))
            journal.phase = "committed"
            journal.save()
            finish(journal)
            _carry_ledger(layout, carried)
    except KeyboardInterrupt:
        if journal.phase != "staging":
            raise Interrupted(
                "interrupted during the swap: the swap was completed, so the state is the "
                f"archive's; the safety snapshot {report.safety_snapshot} holds the state before it"
            ) from None
        with deferred_signals():
            rollback_staging(journal)
        raise Interrupted(
            "interrupted while staging the restore: nothing live had changed, and the staged "
            "files were removed; the state is as it was"
        ) from None
    except OSError as err:
        if journal.phase == "staging":
            rollback_staging(journal)
            raise from_os_error(err, "staging the restored files") from err
        raise from_os_error(
            err, "swapping restored files into place (the next backup or restore finishes it)"
        ) from err
    except BaseException:
        if journal.phase == "staging":
            rollback_staging(journal)
        raise
