"""The in-place restore journal: every rename of a swap, written down before it happens.

An in-place restore first stages every new file beside its destination (same directory, so the
same file system), then swaps them in with renames, moving each old file (and each database's old
`-wal`/`-shm`) aside rather than deleting it. The journal, written atomically before each phase,
lets the next run finish what a killed run started:

- phase `staging`: nothing live was touched yet, so the staged files are removed (rolled back);
- phase `swapping`: every staged file was synced before this phase began, so the swap is
  completed (rolled forward); each step is idempotent;
- phase `committed`: only the clean-up of the old files remains, and it is finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import jsonio
from ..archive.format import SIDECAR_SUFFIXES
from ..errors import from_os_error
from ..fsutil import atomic_write, fsync_dir, lexically_within, remove_tree
from ..state.layout import JOURNAL_NAME, RESTORE_TEMP_PREFIX, StateLayout
from .plan import LivePlaces, allowed, live_places


def temp_sibling(dest: Path, restore_id: str, role: str) -> Path:
    """A short, unique name beside `dest` (same directory, so a rename is atomic)."""
    tag = hashlib.sha1(os.fsencode(dest.name)).hexdigest()[:12]
    return dest.parent / f"{RESTORE_TEMP_PREFIX}{restore_id}-{tag}.{role}"


@dataclass
class Entry:
    dest: str
    staged: str | None  # None: the destination is removed (--delete-extra)
    aside: str | None  # where the old file goes; None when there was none
    sidecars: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Journal:
    restore_id: str
    archive: str
    state_dir: str
    phase: str
    entries: list[Entry]
    created_dirs: list[str] = field(default_factory=list)
    dir_modes: list[tuple[str, int]] = field(default_factory=list)
    safety_snapshot: str | None = None

    @staticmethod
    def path_for(state_dir: Path) -> Path:
        return state_dir / JOURNAL_NAME

    def save(self) -> None:
        atomic_write(self.path_for(Path(self.state_dir)), jsonio.dumps(asdict(self)))

    @classmethod
    def load(cls, state_dir: Path) -> Journal | None:
        """The pending journal, None if there is none; ValueError for one that is not a
        journal this program wrote."""
        path = cls.path_for(state_dir)
        try:
            raw = jsonio.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as err:
            raise ValueError(f"not JSON: {err}") from err
        try:
            raw["entries"] = [
                Entry(e["dest"], e["staged"], e["aside"], [tuple(s) for s in e["sidecars"]])
                for e in raw["entries"]
            ]
            raw["dir_modes"] = [tuple(d) for d in raw["dir_modes"]]
            return cls(**raw)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a restore journal: {err!r}") from err

    def defect(self, places: LivePlaces) -> str | None:
        """Why this journal may not be carried out, or None: every path it would rename or
        unlink must be one an in-place restore of this state may write, and every temporary
        name a sibling of its destination."""
        if os.path.normpath(self.state_dir) != os.path.normpath(places.layout.state_dir):
            return f"it belongs to {self.state_dir}"
        for e in self.entries:
            if not isinstance(e.dest, str) or not allowed(places, e.dest):
                return f"it names {e.dest!r}, outside the places a restore may write"
            for temp in (e.staged, e.aside, *(a for _s, a in e.sidecars)):
                if temp is not None and not _is_temp_sibling(temp, e.dest):
                    return f"it names {temp!r}, which is no temporary name beside {e.dest}"
            if any(side not in (e.dest + s for s in SIDECAR_SUFFIXES) for side, _a in e.sidecars):
                return f"it names a sidecar that is not one of {e.dest}"
        for d, mode in self.dir_modes:
            if not isinstance(d, str) or not isinstance(mode, int) or not allowed(places, d):
                return f"it names the directory {d!r}, outside the places a restore may write"
        # A created directory is only ever removed again with rmdir, which removes nothing but
        # an empty directory: it may be a missing parent of an allowed place (a config file's).
        dests = [e.dest for e in self.entries]
        for d in self.created_dirs:
            if not isinstance(d, str) or not any(lexically_within(p, d) for p in dests):
                return f"it names the directory {d!r}, which holds nothing it restores"
        return None

    def remove(self) -> None:
        """Remove the journal, and any temporary copy of it an interrupted save left (saves
        happen only under the state lock, so any such copy is this restore's own)."""
        path = self.path_for(Path(self.state_dir))
        for stale in [path, *path.parent.glob(f"{JOURNAL_NAME}.*.tmp")]:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        fsync_dir(path.parent)


def _exists(path: str | None) -> bool:
    return path is not None and os.path.lexists(path)


def swap_entry(e: Entry) -> None:
    """Move the old file and its sidecars aside, put the staged file in. Safe to repeat."""
    for side, side_aside in e.sidecars:
        if _exists(side) and not _exists(side_aside):
            os.rename(side, side_aside)
    if e.aside and _exists(e.dest) and not _exists(e.aside):
        os.rename(e.dest, e.aside)
    if e.staged and _exists(e.staged):
        os.rename(e.staged, e.dest)


def unstage_entry(e: Entry) -> None:
    """Phase `staging` rollback: remove what was staged; nothing live was touched."""
    if e.staged and _exists(e.staged):
        os.unlink(e.staged)


def finish(journal: Journal) -> None:
    """After commit: apply directory modes, drop the old files, drop the journal."""
    for path, mode in journal.dir_modes:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path, mode)
    dirs: set[str] = set()
    for e in journal.entries:
        for old in [e.aside, *(a for _s, a in e.sidecars)]:
            if old and _exists(old):
                # A directory the archive replaced with a file goes too: it is in the safety
                # snapshot, and leaving it would keep a user's data under a temporary name.
                remove_tree(Path(old))
        dirs.add(os.path.dirname(e.dest))
    for d in dirs:
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(Path(d))
    journal.remove()


def rollback_staging(journal: Journal) -> None:
    for e in journal.entries:
        unstage_entry(e)
    for d in sorted(journal.created_dirs, key=len, reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(d)
    journal.remove()


def _is_temp_sibling(path: str, dest: str) -> bool:
    return (
        isinstance(path, str)
        and os.path.dirname(os.path.normpath(path)) == os.path.dirname(os.path.normpath(dest))
        and os.path.basename(path).startswith(RESTORE_TEMP_PREFIX)
    )


def recover(layout: StateLayout) -> str | None:
    """Finish or undo an interrupted in-place restore; say which, or None if there was none.
    A journal that names anything a restore of this state may not touch is set aside unread."""
    path = Journal.path_for(layout.state_dir)
    try:
        journal = Journal.load(layout.state_dir)
        why = journal.defect(live_places(layout)) if journal is not None else None
    except ValueError as err:
        journal, why = None, str(err)
    if why is not None:
        rejected = path.with_name(f"{JOURNAL_NAME}.rejected")
        os.replace(path, rejected)
        fsync_dir(path.parent)
        return f"set aside a restore journal that cannot be trusted ({why}): see {rejected}"
    if journal is None:
        return None
    try:
        return _carry_out(journal)
    except OSError as err:
        raise from_os_error(err, "finishing an interrupted restore") from err


def complete(journal: Journal) -> None:
    """Finish a swap in progress (every remaining rename, then the clean-up), or only the
    clean-up of a committed one. The renames are never repeated after the commit: by then old
    files may be gone from their aside names, and a repeated swap would move a new file aside."""
    if journal.phase == "swapping":
        for e in journal.entries:
            swap_entry(e)
        journal.phase = "committed"
        journal.save()
    finish(journal)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM off while a rollback or a swap completes, then deliver them as
    KeyboardInterrupt: a second Ctrl-C must not cut the step that makes the state whole."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    old = {s: signal.signal(s, lambda n, _f: caught.append(n)) for s in _DEFERRED}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if caught:
        raise KeyboardInterrupt


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


def _carry_out(journal: Journal) -> str:
    if journal.phase == "staging":
        rollback_staging(journal)
        return (
            f"rolled back an interrupted restore of {journal.archive} "
            "(it had not touched the live state yet)"
        )
    complete(journal)
    return f"completed an interrupted restore of {journal.archive}"
