"""Status: is the last good backup fresh, and did the last run and its verify succeed?

One line and an exit code for cron mail, systemd `OnFailure=` or a monitoring probe: 0 when
fresh and good, 1 otherwise.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from .catalog import Entry, catalogue
from .errors import InputError
from .ledger import read_runs
from .locations import layout_for, resolve_output_dir, resolve_state_dir

DEFAULT_MAX_AGE = "26h"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """`90m`, `26h`, `2d`, `1w`, `1d12h` → seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise InputError(f"bad duration {text!r}: write it like 90m, 26h, 2d or 1w")
    return sum(float(n) * _UNITS[u] for n, u in parts)


@dataclass
class StatusReport:
    ok: bool
    problems: list[str]
    max_age_s: float
    last_good: Entry | None
    last_run_status: str | None
    age_s: float | None

    def line(self) -> str:
        if self.last_good is None:
            return "FAIL: " + "; ".join(self.problems)
        verify = "never verified"
        if self.last_good.last_verify is not None:
            verify = "verify ok" if self.last_good.last_verify.ok else "verify FAILED"
        head = f"last good backup {self.last_good.backup_id}, {_human(self.age_s)} old, {verify}"
        verdict = "OK" if self.ok else "FAIL: " + "; ".join(self.problems)
        return f"{verdict}: {head}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "max_age_seconds": self.max_age_s,
            "age_seconds": None if self.age_s is None else round(self.age_s, 1),
            "last_run_status": self.last_run_status,
            "last_good": self.last_good.to_dict() if self.last_good else None,
        }


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def backup_status(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    max_age: str = DEFAULT_MAX_AGE,
    output: str | os.PathLike[str] | None = None,
) -> StatusReport:
    limit = parse_duration(max_age)
    state = resolve_state_dir(state_dir)
    out = resolve_output_dir(output, state)
    global_db = layout_for(state).global_db
    has_ledger = global_db.is_file()
    # One read of the ledger serves both the catalogue and the last run's result.
    runs = read_runs(global_db)
    entries = catalogue(out, runs, read_unknown=False)
    problems: list[str] = []
    if not has_ledger:
        problems.append(f"no ledger: {global_db} not found")
    backup_runs = [r for r in runs if not r.id.startswith("verify:")]
    last_run = backup_runs[0].status if backup_runs else None
    if last_run == "failed":
        problems.append(f"the last backup run ({backup_runs[0].id}) failed")
    good = [e for e in entries if e.on_disk and e.status == "ok"]
    last_good = good[0] if good else None
    age = None
    if last_good is None:
        problems.append("no good backup on disk")
    else:
        age = time.time() - last_good.created_at.timestamp()
        if age > limit:
            problems.append(f"the last good backup is older than {max_age}")
        if last_good.last_verify is not None and not last_good.last_verify.ok:
            problems.append("the last verify of the last good backup failed")
    return StatusReport(
        ok=not problems,
        problems=problems,
        max_age_s=limit,
        last_good=last_good,
        last_run_status=last_run,
        age_s=age,
    )
