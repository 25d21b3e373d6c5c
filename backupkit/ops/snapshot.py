"""Pre-migration safety snapshots: a proven archive before a migration touches the state.

`safety_snapshot()` is a full backup (every legacy `sessions.json` and JSONL file included) that
is always verified and raises unless the archive is proven restorable. As a context manager it
adds to any exception raised inside the block a note with the exact command that rolls back
(the library never prints; the caller's traceback or error handler shows the note).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from types import TracebackType
from typing import Literal

from ..archive.manifest import Manifest
from ..backup.pipeline import BackupResult, create_backup
from ..errors import IntegrityError
from ..progress import ProgressCallback


class SafetySnapshot:
    """A proven snapshot: `.archive`, `.backup_id`, `.manifest`, and the way back."""

    def __init__(self, result: BackupResult) -> None:
        self.result = result
        self.archive: Path = result.archive
        self.backup_id: str = result.backup_id
        self.manifest: Manifest = result.manifest
        self.status = result.status

    @property
    def state_dir(self) -> str:
        return self.manifest.state_dir

    @property
    def rollback_command(self) -> str:
        keys = (
            " --identity IDENTITY_FILE --recipients-file RECIPIENTS_FILE"
            if self.manifest.encryption is not None
            else ""
        )
        return (
            f"backupkit --state-dir {shlex.quote(self.state_dir)} restore "
            f"{shlex.quote(os.fspath(self.archive))} --in-place{keys}"
        )

    def __enter__(self) -> SafetySnapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is not None:
            message = (
                f"backupkit: the migration failed; to roll the state back to the snapshot taken "
                f"before it, run: {self.rollback_command}"
            )
            exc.add_note(message)
        return False


def safety_snapshot(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    reason: str = "pre-migration",
    output: str | os.PathLike[str] | None = None,
    wait: float = 0.0,
    progress: ProgressCallback | None = None,
    encrypt_to: tuple[str, ...] | list[str] = (),
    recipients_file: str | os.PathLike[str] | None = None,
) -> SafetySnapshot:
    """Take a verified snapshot of the whole state, or raise `BackupError`.

    Raises `IntegrityError` (exit 1) when any database or the archive cannot be proven; the
    unproven archive is not left under a final name, so it cannot be mistaken for a rollback
    point. Other failures raise as `create_backup` does (busy 3, environment 4, bad input 2).
    Encrypted like any backup: to `encrypt_to`/`recipients_file`, else to the recipients of
    $BACKUPKIT_RECIPIENTS_FILE.
    """
    result = create_backup(
        state_dir,
        output=output,
        reason=reason,
        verify=True,
        wait=wait,
        progress=progress,
        keep_unproven=False,
        encrypt_to=encrypt_to,
        recipients_file=recipients_file,
    )
    if not result.ok:
        raise IntegrityError(
            f"safety snapshot not proven, do not migrate: {result.problems[0]}"
            + (f" (+{len(result.problems) - 1} more)" if len(result.problems) > 1 else "")
        )
    return SafetySnapshot(result)
