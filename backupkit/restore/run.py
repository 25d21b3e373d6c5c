"""`restore_archive`: the library entry point of both restore modes."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..progress import ProgressCallback
from ..state.layout import existing_layout
from .in_place import restore_in_place
from .plan import RestoreReport
from .target import restore_to_target


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
    from_other_state: bool = False,
    progress: ProgressCallback | None = None,
) -> RestoreReport:
    """Restore `archive` into `target` (a missing or empty dir) or, with `in_place=True`, over
    the live state dir. Returns what was (or, with `dry_run`, would be) created, replaced, kept,
    removed and skipped."""
    if (target is None) == (not in_place):
        raise InputError("restore needs exactly one of --target DIR or --in-place")
    path = Path(os.path.abspath(archive))
    if target is not None:
        return restore_to_target(
            path, Path(os.path.abspath(target)), dry_run=dry_run, agents=agents, progress=progress
        )
    return restore_in_place(
        path,
        existing_layout(state_dir),
        dry_run=dry_run,
        agents=agents,
        force=force,
        output=output,
        delete_extra=delete_extra,
        other_state=from_other_state,
        progress=progress,
    )
