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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from .fsutil import fsync_dir

JOURNAL_NAME = "backupkit-restore.journal"
TEMP_PREFIX = ".bk-restore-"


def temp_sibling(dest: Path, restore_id: str, role: str) -> Path:
    """A short, unique name beside `dest` (same directory, so a rename is atomic)."""
    tag = hashlib.sha1(os.fsencode(dest.name)).hexdigest()[:12]
    return dest.parent / f"{TEMP_PREFIX}{restore_id}-{tag}.{role}"


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
        path = self.path_for(Path(self.state_dir))
        tmp = path.with_name(path.name + ".tmp")
        data = orjson.dumps(asdict(self))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        fsync_dir(path.parent)

    @classmethod
    def load(cls, state_dir: Path) -> Journal | None:
        path = cls.path_for(state_dir)
        try:
            raw = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        raw["entries"] = [
            Entry(e["dest"], e["staged"], e["aside"], [tuple(s) for s in e["sidecars"]])
            for e in raw["entries"]
        ]
        raw["dir_modes"] = [tuple(d) for d in raw["dir_modes"]]
        return cls(**raw)

    def remove(self) -> None:
        path = self.path_for(Path(self.state_dir))
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + ".tmp").unlink()
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
                os.unlink(old)
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


def recover(state_dir: Path) -> str | None:
    """Finish or undo an interrupted in-place restore; say which, or None if there was none."""
    journal = Journal.load(state_dir)
    if journal is None:
        return None
    if journal.phase == "staging":
        rollback_staging(journal)
        return (
            f"rolled back an interrupted restore of {journal.archive} "
            "(it had not touched the live state yet)"
        )
    if journal.phase == "swapping":
        for e in journal.entries:
            swap_entry(e)
        journal.phase = "committed"
        journal.save()
    finish(journal)
    return f"completed an interrupted restore of {journal.archive}"
