"""The member policy: which tar members an archive may hold, and what restore may make of them.

One set of rules, applied by verify, show, restore and recovery alike before any byte is written
(in the spirit of CPython's tarfile `data` extraction filter, but stricter, because a backupkit
archive has one known shape):

- a name is canonical (no leading `/`, no empty, `.` or `..` component) and starts with `state/`
  or `external/`, or is `manifest.json`; so two spellings of one path can never both pass, and
  every later comparison of names may be lexical;
- a member is a regular file, a directory or a symlink: never a hard link, device, fifo or an
  unknown type; never a database's sidecar (`X-wal`, `X-shm`, `X-journal` beside a database
  member `X`; a user's `notes-journal` is just a file); never named like one of backupkit's
  own files (the lock, the restore journal, restore and staging temporaries);
- no member lies under a symlink member (a link planted by the archive is never written through);
- a restored mode keeps permission and sticky bits only (no setuid or setgid from an archive);
- a destination is computed from a checked name and must stay lexically inside its root.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import IntegrityError
from ..fsutil import lexically_within
from ..state.layout import JOURNAL_NAME, LOCK_NAME, RESTORE_TEMP_PREFIX
from .format import MANIFEST_NAME, SIDECAR_SUFFIXES

ROOTS = ("state", "external")
# backupkit's own files, where it makes them: a member named like one could plant a journal
# (whose recovery renames and unlinks what it names), a lock, a restore's marker or spool at the
# top of the state, or an in-place restore's temporary anywhere beside a restored file.
_OWN_TOP_LEVEL = (f"state/{LOCK_NAME}", f"state/{JOURNAL_NAME}", "state/.backupkit-restore-")
_OWN_PREFIXES = (RESTORE_TEMP_PREFIX,)


def name_defect(name: str) -> str | None:
    """Why `name` may not be a member name, or None when it may."""
    if name == MANIFEST_NAME:
        return None
    if not name or name.startswith("/"):
        return f"member {name!r} has an absolute or empty name"
    parts = name.split("/")
    if ".." in parts:
        return f"member {name!r} climbs out of the archive with '..'"
    if "" in parts or "." in parts:
        return f"member {name!r} is not spelled canonically (empty or '.' component)"
    if "\x00" in name:
        return f"member {name!r} has a NUL byte in its name"
    if parts[0] not in ROOTS or len(parts) < 2:
        return f"member {name!r} lies outside state/ and external/"
    if name.startswith(_OWN_TOP_LEVEL) or parts[-1].startswith(_OWN_PREFIXES):
        return f"member {name!r} is named like one of backupkit's own files"
    return None


def member_defect(member: tarfile.TarInfo) -> str | None:
    """Why this tar member may not be in an archive, or None when it may."""
    bad = name_defect(member.name)
    if bad:
        return bad
    if member.name == MANIFEST_NAME and not member.isreg():
        return "manifest.json is not a regular file"
    if member.isreg() or member.isdir():
        return None
    if member.issym():
        if not member.linkname or "\x00" in member.linkname:
            return f"member {member.name!r} is a symlink with an empty or invalid target"
        return None
    kind = "hard link" if member.islnk() else "device, fifo or other special file"
    return f"member {member.name!r} is a {kind}, which an archive must never hold"


def under_symlink(names: Iterable[str], links: set[str]) -> dict[str, str]:
    """Each name that lies below a symlink member, with that link's name."""
    found: dict[str, str] = {}
    for name in names:
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in links:
                found[name] = parent
                break
    return found


def sidecars(names: Iterable[str], databases: set[str]) -> list[str]:
    """The names that are a sidecar of one of the database members."""
    return [
        n for n in names for s in SIDECAR_SUFFIXES if n.endswith(s) and n[: -len(s)] in databases
    ]


def safe_mode(mode: int) -> int:
    """Permission and sticky bits only: setuid, setgid and out-of-range numbers never restore."""
    return mode & 0o1777


def contained(root: Path, relative: str) -> Path:
    """`root / relative`, refused unless it stays inside `root` once normalised."""
    dest = Path(os.path.normpath(root / relative))
    if not lexically_within(dest, root) or dest == Path(os.path.normpath(root)):
        raise IntegrityError(f"refusing to write {root / relative}: outside {root}")
    return dest
