"""What a run ran on and which code it measured, for the report's `machine` section."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .procs import tool_version
from .rounds import have_gnu_time
from .settings import ROOT


def code_hash() -> str:
    """The backupkit sources under test: others may edit them while a long run goes on."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "backupkit").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    cpu_model = None
    mem_total = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    zstd_cli = tool_version(["zstd", "--version"]) or ""
    match = re.search(r"v(\d+\.\d+\.\d+)", zstd_cli)
    commit = tool_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = tool_version(["git", "-C", str(ROOT), "status", "--porcelain", "--", "backupkit"])
    versions: dict[str, str | None] = {}
    for dist in ("backupkit", "zstandard"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    sqlite_cli = tool_version(["sqlite3", "--version"])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_bytes": mem_total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite_python": sqlite3.sqlite_version,
        "sqlite_cli": sqlite_cli.split()[0] if sqlite_cli else None,
        "zstd_cli": match.group(1) if match else None,
        "zstandard_python": versions["zstandard"],
        "tar": tool_version(["tar", "--version"]),
        "backupkit": versions["backupkit"],
        "git_commit": commit,
        # Others edit backupkit/ concurrently: say whether the measured code was committed.
        "backupkit_tree_dirty": bool(dirty),
        "backupkit_code_hash": code_hash(),
        "peak_rss_via": "GNU time -v" if have_gnu_time() else "getrusage wrapper",
        # Other work on the machine skews timings: the load says how quiet the run was.
        "loadavg_start": list(os.getloadavg()),
    }
