"""`restore_archive`: the library entry point of both restore modes."""

from __future__ import annotations

import os
from pathlib import Path

from ..archive.crypt import (
    RECIPIENTS_ENV,
    Identities,
    needs_identity,
    resolve_identities,
    resolve_recipients,
)
from ..archive.reader import is_encrypted_archive
from ..archive.source import ArchiveRef, as_ref
from ..errors import OptionError
from ..progress import ProgressCallback
from ..state.layout import existing_layout
from .in_place import restore_in_place
from .plan import RestoreReport
from .target import restore_to_target


def restore_archive(
    archive: str | os.PathLike[str] | ArchiveRef,
    *,
    target: str | os.PathLike[str] | None = None,
    in_place: bool = False,
    dry_run: bool = False,
    agents: list[str] | None = None,
    force: bool = False,
    state_dir: str | os.PathLike[str] | None = None,
    output: str | os.PathLike[str] | None = None,
    delete_extra: bool = False,
    from_other_state: bool = False,
    progress: ProgressCallback | None = None,
    identity: str | os.PathLike[str] | Identities | None = None,
    encrypt_to: tuple[str, ...] | list[str] = (),
    recipients_file: str | os.PathLike[str] | None = None,
) -> RestoreReport:
    """Restore `archive` into `target` (a missing or empty dir) or, with `in_place=True`, over
    the live state dir. Returns what was (or, with `dry_run`, would be) created, replaced, kept,
    removed and skipped.

    An encrypted archive needs `identity` (a file, else $BACKUPKIT_IDENTITY_FILE). In place,
    the safety snapshot is encrypted to `encrypt_to`/`recipients_file`, else to
    $BACKUPKIT_RECIPIENTS_FILE's recipients; restoring an encrypted archive in place with none
    of them is refused (exit 2) rather than writing a plaintext snapshot of an encrypted state."""
    if (target is None) == (not in_place):
        raise OptionError("restore needs exactly one of --target DIR or --in-place")
    # In place, the live state is what is at stake: a missing one is the first thing to say.
    layout = existing_layout(state_dir) if in_place else None
    path = as_ref(archive)
    encrypted = is_encrypted_archive(path)
    identities = resolve_identities(identity) if encrypted else None
    if encrypted and identities is None:
        raise needs_identity(str(path))
    if target is not None:
        if encrypt_to or recipients_file is not None:
            raise OptionError(
                "--encrypt-to and --recipients-file are for --in-place (its safety snapshot); "
                "restore --target takes no snapshot"
            )
        return restore_to_target(
            path,
            Path(os.path.abspath(target)),
            dry_run=dry_run,
            agents=agents,
            progress=progress,
            identities=identities,
        )
    recipients = resolve_recipients(encrypt_to, recipients_file)
    if encrypted and recipients is None and not dry_run:
        raise OptionError(
            f"archive {path} is encrypted, and so must be the safety snapshot of the live "
            "state taken before it is restored in place: pass --encrypt-to RECIPIENT or "
            f"--recipients-file FILE (or set ${RECIPIENTS_ENV})"
        )
    assert layout is not None
    report = restore_in_place(
        path,
        layout,
        dry_run=dry_run,
        agents=agents,
        force=force,
        output=output,
        delete_extra=delete_extra,
        other_state=from_other_state,
        progress=progress,
        identities=identities,
        recipients=recipients,
    )
    if dry_run and encrypted and recipients is None:
        report.warnings.append(
            "a real run needs recipients for its safety snapshot: pass --encrypt-to or "
            f"--recipients-file (or set ${RECIPIENTS_ENV})"
        )
    return report
