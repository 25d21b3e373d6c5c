"""This state dir's remote copies: the objects under a remote, joined with its ledger.

A remote object is this state dir's when its name is an archive of this state dir's ledger
(a backup row) or the ledger recorded uploading it (a remote row). Anything else under the
prefix, another gateway's copies sharing it included, is of unknown owner: listed as such,
never counted, never pruned. A copy is proven when the ledger's newest row for its URL is
`remote-ok` and the object still has the size that was proven.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..archive.format import is_encrypted_name, parse_archive_name
from ..ops import ledger
from ..ops.catalog import Owner
from ..ops.ledger import Kind, Ledger, Row
from ..state.layout import existing_layout
from .client import make_client, translate
from .url import Remote

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass
class RemoteEntry:
    backup_id: str
    created_at: datetime  # UTC, from the name
    url: str
    key: str
    size_bytes: int
    owner: Owner
    state: str | None  # the newest ledger row's status for this URL (remote-ok, ...), or None
    reason: str | None
    proven_row: Row | None = None

    @property
    def proven(self) -> bool:
        row = self.proven_row
        return row is not None and (row.payload or {}).get("size_bytes") == self.size_bytes

    @property
    def encrypted(self) -> bool:
        return is_encrypted_name(self.key)

    def to_dict(self) -> dict[str, Any]:
        payload = (self.proven_row.payload or {}) if self.proven_row else {}
        return {
            "backup_id": self.backup_id,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "url": self.url,
            "size_bytes": self.size_bytes,
            "owner": str(self.owner),
            "proven": self.proven,
            "ledger_status": self.state,
            "sha256": payload.get("sha256"),
            "checksum": payload.get("checksum"),
            # Rows recorded before the key followed docs/json.md say "locked_until".
            "locked_until_at": payload.get("locked_until_at", payload.get("locked_until")),
            "reason": self.reason,
            "encrypted": self.encrypted,
        }


@dataclass
class RemoteCatalogue:
    remote: Remote
    entries: list[RemoteEntry] = field(default_factory=list)  # newest first
    problems: list[str] = field(default_factory=list)

    def own(self) -> list[RemoteEntry]:
        return [e for e in self.entries if e.owner is Owner.THIS]

    def newest_proven(self) -> RemoteEntry | None:
        return next((e for e in self.own() if e.proven), None)


def remote_rows_by_url(book: Ledger) -> dict[str, Row]:
    """The newest remote row of each URL."""
    newest: dict[str, Row] = {}
    for row in book.of_kind(Kind.REMOTE):  # newest first
        if row.archive_path and row.archive_path not in newest:
            newest[row.archive_path] = row
    return newest


def own_keys(book: Ledger, remote: Remote) -> set[str]:
    """Keys under `remote` that are this state dir's: its archives' names, and every URL the
    ledger recorded uploading there."""
    keys = set()
    for row in book.of_kind(Kind.BACKUP):
        if row.archive_path:
            keys.add(remote.object(row.archive_path.rsplit("/", 1)[-1]).key)
    for url in remote_rows_by_url(book):
        obj_prefix = f"s3://{remote.bucket}/"
        if url.startswith(obj_prefix):
            keys.add(url[len(obj_prefix) :])
    return {k for k in keys if k.startswith(remote.key_prefix)}


def remote_catalogue(client: S3Client, book: Ledger, remote: Remote) -> RemoteCatalogue:
    cat = RemoteCatalogue(remote, problems=list(book.problems))
    mine = own_keys(book, remote)
    rows = remote_rows_by_url(book)
    proven: dict[str, Row] = {}
    for row in book.of_kind(Kind.REMOTE):
        if row.archive_path and row.status == "remote-ok" and row.archive_path not in proven:
            proven[row.archive_path] = row
    reasons = {r.id: r.reason for r in book.of_kind(Kind.BACKUP)}
    # The backup row's time in ms, where the ledger has one: two backups taken in the same
    # second keep their order (the name has seconds only).
    taken = {r.id: r.created_at for r in book.of_kind(Kind.BACKUP) if r.created_at}
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=remote.bucket, Prefix=remote.key_prefix
        )
        objects = [o for page in pages for o in page.get("Contents", [])]
    except Exception as err:
        raise translate(err, "listing", remote.url) from err
    for obj in objects:
        key = obj["Key"]
        rest = key[len(remote.key_prefix) :]
        parsed = parse_archive_name(rest) if "/" not in rest else None
        if parsed is None:
            continue
        backup_id, when = parsed
        if backup_id in taken:
            when = datetime.fromtimestamp(taken[backup_id] / 1000, tz=UTC)
        url = f"s3://{remote.bucket}/{key}"
        newest = rows.get(url)
        pruned = newest is not None and newest.status == "remote-pruned"
        cat.entries.append(
            RemoteEntry(
                backup_id,
                when.astimezone(UTC),
                url,
                key,
                int(obj.get("Size", 0)),
                Owner.THIS if key in mine else Owner.UNKNOWN,
                newest.status if newest else None,
                reasons.get(backup_id),
                None if pruned else proven.get(url),
            )
        )
    cat.entries.sort(key=lambda e: (e.created_at, e.backup_id), reverse=True)
    return cat


def list_remote(state_dir: str | os.PathLike[str] | None, remote: str | None) -> RemoteCatalogue:
    """`list --remote`: the copies under the remote (else $BACKUPKIT_REMOTE), with the owner and
    proof of each, as this state dir's ledger knows them."""
    from .push import require_remote

    where = require_remote(remote, "--remote")
    layout = existing_layout(state_dir)
    return remote_catalogue(make_client(), ledger.read(layout.global_db), where)
