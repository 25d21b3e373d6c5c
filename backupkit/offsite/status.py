"""`status --remote`: is the newest proven remote copy there and fresh, and did the last upload
succeed? The same verdict rules as the local status, for the copies off the machine."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..ops.ledger import Kind, Ledger
from .catalog import RemoteEntry, remote_catalogue
from .client import make_client
from .url import Remote


@dataclass
class RemoteStatus:
    remote: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    newest: RemoteEntry | None = None
    age_s: float | None = None
    last_upload_status: str | None = None
    copies: int = 0
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "url": self.remote,
            "problems": self.problems,
            "age_seconds": None if self.age_s is None else round(self.age_s, 1),
            "newest_proven": self.newest.to_dict() if self.newest else None,
            "last_upload_status": self.last_upload_status,
            "copy_count": self.copies,
            "copy_bytes": self.bytes,
        }


def remote_status(book: Ledger, remote: Remote, max_age_s: float, max_age: str) -> RemoteStatus:
    cat = remote_catalogue(make_client(), book, remote)
    report = RemoteStatus(remote.url, ok=True, problems=list(cat.problems))
    uploads = [
        r
        for r in book.of_kind(Kind.REMOTE)
        if r.status in ("remote-ok", "remote-failed")
        and (r.archive_path or "").startswith(remote.url.rstrip("/") + "/")
    ]
    if uploads:
        report.last_upload_status = uploads[0].status
        if uploads[0].status == "remote-failed":
            error = (uploads[0].payload or {}).get("error", "")
            report.problems.append(f"the last upload to {remote} failed: {error}")
    report.newest = cat.newest_proven()
    own = cat.own()
    report.copies = len(own)
    report.bytes = sum(e.size_bytes for e in own)
    if report.newest is None:
        report.problems.append(f"no proven remote copy in {remote}")
    else:
        report.age_s = time.time() - report.newest.created_at.timestamp()
        if report.age_s > max_age_s:
            report.problems.append(f"the newest proven remote copy is older than {max_age}")
    report.ok = not report.problems
    return report
