"""Naming an archive: a path, a backup id as `list` prints it, a unique prefix of one, or
`latest`. Ids and `latest` are looked up among this state dir's archives (its ledger and its
backup directory), so `verify latest` checks this gateway's newest archive and no other's."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..archive.source import ArchiveRef
from ..errors import InputError
from ..offsite.url import RemoteObject, is_remote
from ..state.layout import default_output_dir, existing_layout
from . import ledger
from .catalog import catalogue

_ID_LIKE = re.compile(r"^[0-9][0-9TZ]*(?:-[0-9a-f]{0,8})?$")


def resolve_archive(ref: str, state_dir: str | os.PathLike[str] | None) -> ArchiveRef:
    """The archive `ref` names. An `s3://BUCKET/KEY` URL is a remote object; a ref that is a
    file, or has a `/`, is a path as given."""
    if is_remote(ref):
        return RemoteObject.parse(ref)
    if ref != "latest" and (os.sep in ref or os.path.lexists(ref) or not _ID_LIKE.match(ref)):
        return Path(ref)
    layout = existing_layout(state_dir)
    cat = catalogue(
        layout.state_dir,
        ledger.read(layout.global_db),
        [default_output_dir(layout.state_dir)],
        read_unknown=False,
    )
    on_disk = [e for e in cat.own() if e.on_disk and e.archive is not None and e.status != "pruned"]
    if ref == "latest":
        if not on_disk:
            raise InputError(f"no archive of {layout.state_dir} is on disk: back up first")
        archive = on_disk[0].archive
        assert archive is not None
        return archive
    hits = [e for e in on_disk if e.backup_id.startswith(ref)]
    if not hits:
        raise InputError(
            f"no archive of {layout.state_dir} has the id {ref!r}: see `backupkit list`"
        )
    if len({e.backup_id for e in hits}) > 1:
        ids = ", ".join(sorted({e.backup_id for e in hits})[:4])
        raise InputError(f"{ref!r} names more than one archive ({ids}): give more of the id")
    archive = hits[0].archive
    assert archive is not None
    return archive
