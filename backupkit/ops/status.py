"""Status: is the newest good backup there, fresh and proven, and did the last run succeed?

One verdict and an exit code for cron mail, systemd `OnFailure=` or a monitoring probe: ok only
when the last backup run succeeded, the newest good archive is on disk, younger than the limit,
and its last check (read-back or verify) did not fail, and the ledger could be read whole.
Archives are found through the paths the ledger recorded, wherever they were written.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OptionError
from ..offsite.status import RemoteStatus, remote_status
from ..offsite.url import remote_from
from ..state.layout import default_output_dir, existing_layout, resolve_output_dir
from . import ledger
from .catalog import Entry, catalogue

DEFAULT_MAX_AGE = "26h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90m`, `26h`, `2d`, `1w`, `1d12h` → seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise OptionError(f"bad duration {text!r}: write it like 90m, 26h, 2d or 1w")
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass
class StatusReport:
    state_dir: Path
    ok: bool
    problems: list[str]
    max_age_s: float
    last_good: Entry | None
    last_run_status: str | None
    last_run_id: str | None
    age_s: float | None
    archives: int
    archive_bytes: int
    remote: RemoteStatus | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "state_dir": os.fspath(self.state_dir),
            "problems": self.problems,
            "max_age_seconds": self.max_age_s,
            "age_seconds": None if self.age_s is None else round(self.age_s, 1),
            "last_run_status": self.last_run_status,
            "last_run_id": self.last_run_id,
            "last_good": self.last_good.to_dict() if self.last_good else None,
            "archive_count": self.archives,
            "archive_bytes": self.archive_bytes,
            "remote": self.remote.to_dict() if self.remote else None,
        }


def backup_status(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    max_age: str = DEFAULT_MAX_AGE,
    output: str | os.PathLike[str] | None = None,
    remote: str | None = None,
) -> StatusReport:
    """The verdict on this state dir's backups; with `remote` (else $BACKUPKIT_REMOTE) on its
    remote copies too: the newest proven copy must be younger than `max_age`, and the last
    upload must have succeeded."""
    limit = parse_duration(max_age)
    where = remote_from(remote)
    layout = existing_layout(state_dir)
    dirs: list[Path] = [default_output_dir(layout.state_dir)]
    if output is not None:
        dirs.append(resolve_output_dir(output, layout.state_dir))
    book = ledger.read(layout.global_db)
    cat = catalogue(layout.state_dir, book, dirs, read_unknown=False)
    problems: list[str] = list(cat.problems)
    if not book.found:
        problems.append(f"no ledger: {layout.global_db} not found")
    runs = book.of_kind(ledger.Kind.BACKUP)
    last_run = runs[0] if runs else None
    if last_run is not None and last_run.status == "failed":
        problems.append(f"the last backup run ({last_run.id}) failed")
    own = [e for e in cat.own() if e.in_ledger]
    good = next((e for e in own if e.status == "ok"), None)
    age = None
    if good is None:
        problems.append("no good backup in the ledger")
    else:
        age = time.time() - good.created_at.timestamp()
        if not good.on_disk:
            problems.append(f"the newest good archive {good.archive} is gone")
        if age > limit:
            problems.append(f"the last good backup is older than {max_age}")
        if good.last_check is not None and not good.last_check.ok:
            problems.append(f"the last {good.last_check.kind} of the newest good archive failed")
    on_disk = [e for e in cat.own() if e.on_disk]
    remote_report = remote_status(book, where, limit, max_age) if where is not None else None
    if remote_report is not None:
        problems.extend(remote_report.problems)
    return StatusReport(
        state_dir=layout.state_dir,
        ok=not problems,
        problems=problems,
        max_age_s=limit,
        last_good=good,
        last_run_status=last_run.status if last_run else None,
        last_run_id=last_run.id if last_run else None,
        age_s=age,
        archives=len(on_disk),
        archive_bytes=sum(e.size_bytes or 0 for e in on_disk),
        remote=remote_report,
    )
