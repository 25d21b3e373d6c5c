"""One exception family for the whole tool.

Every failure a user can see is a `BackupError` carrying a one-line message and the exit code of
the README's exit-code table. The CLI catches it once, prints the message and exits with the
code; library callers can branch on the subclass or on `.exit_code`.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

EXIT_OK = 0
EXIT_INTEGRITY = 1
EXIT_USAGE = 2
EXIT_BUSY = 3
EXIT_ENVIRONMENT = 4


class BackupError(Exception):
    """Base of every backupkit error: a one-line message and an exit code."""

    exit_code: int = EXIT_ENVIRONMENT

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class IntegrityError(BackupError):
    """An archive or a database cannot be proven sound."""

    exit_code = EXIT_INTEGRITY


class InputError(BackupError):
    """Bad usage or bad input: a missing path, a wrong option, a non-empty target."""

    exit_code = EXIT_USAGE


class OptionError(InputError):
    """An option that is missing, contradicts another or cannot be parsed. The command line adds
    the command's own `--help` hint to the message."""


class BusyError(BackupError):
    """Another process holds what we need (the backup lock, a live database)."""

    exit_code = EXIT_BUSY


class EnvironmentFault(BackupError):
    """The machine said no: disk full, permission denied, another I/O failure."""

    exit_code = EXIT_ENVIRONMENT


class Interrupted(EnvironmentFault):
    """SIGINT or SIGTERM arrived; everything in flight was rolled back."""


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


def from_os_error(err: OSError, doing: str, fix: str | None = None) -> EnvironmentFault:
    """Turn an OSError into a one-line environment error that says what to do: `fix`, when the
    caller knows better than the generic advice (e.g. which option picks another place)."""
    where = f" ({err.filename})" if err.filename else ""
    if err.errno in _DISK_FULL:
        return EnvironmentFault(
            f"disk full while {doing}{where}: {fix or 'free space and run again'}"
        )
    if err.errno == errno.EROFS:
        return EnvironmentFault(
            f"read-only file system while {doing}{where}: {fix or 'write somewhere else'}"
        )
    if err.errno in _DENIED:
        return EnvironmentFault(
            f"permission denied while {doing}{where}: "
            f"{fix or 'run as the owner of that path or fix its mode'}"
        )
    reason = err.strerror or str(err)
    return EnvironmentFault(f"I/O error while {doing}{where}: {reason}")


def from_sqlite_error(err: sqlite3.Error, doing: str, path: Path) -> BackupError:
    """Classify a sqlite3 error: environment trouble (exit 4) versus busy (exit 3).

    Errors that say the database itself is bad are not mapped here: the caller records them as a
    failed database rather than aborting the run.
    """
    name = getattr(err, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL") or "disk is full" in str(err):
        return EnvironmentFault(f"disk full while {doing} {path}: free space and run again")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return BusyError(f"database {path} stayed locked while {doing}: retry when it is idle")
    if name.startswith(("SQLITE_PERM", "SQLITE_READONLY", "SQLITE_AUTH")):
        return EnvironmentFault(f"permission denied while {doing} {path}")
    return EnvironmentFault(f"I/O error while {doing} {path}: {err}")


def is_database_defect(err: sqlite3.Error) -> bool:
    """True when the error says the file is not a sound database (as opposed to the machine)."""
    name = getattr(err, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_FORMAT")):
        return True
    text = str(err)
    return "malformed" in text or "not a database" in text
