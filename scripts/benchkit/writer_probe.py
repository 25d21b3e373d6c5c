"""The gateway's view: commit latency on its live databases while a default backup runs.

Two threads commit one row every 2 ms, like a busy gateway, to the global database and to one
agent database (WAL, synchronous=NORMAL, a 30 s busy timeout, BEGIN IMMEDIATE), from half a
second before a default backup (verify on) until half a second after it. Each commit's latency
and every failure are recorded.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .files import remove
from .procs import backupkit_cmd, child_env
from .settings import ROOT
from .targets import writer_target
from .trees import Tree

WRITER_INTERVAL_S = 0.002  # one commit every 2 ms per database, like a busy gateway
WRITER_BUSY_TIMEOUT_MS = 30_000  # what the gateway gives its own writes
SETTLE_S = 0.5  # commits before and after the backup, as a baseline
PROBE_TABLE = "bench_writer_probe"


class Writer:
    """Commits one row at a time to a live database in WAL mode and records each commit's
    latency (BEGIN IMMEDIATE to COMMIT), as the gateway's own writes would see it."""

    def __init__(self, label: str, db: Path) -> None:
        self.label = label
        self.db = db
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{label}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None, timeout=WRITER_BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (at REAL, pad BLOB)")
            pad = os.urandom(256)
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(f"INSERT INTO {PROBE_TABLE} VALUES (?, ?)", (time.time(), pad))
                    conn.execute("COMMIT")
                except sqlite3.Error as err:
                    self.failures.append(str(err))
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                self.latencies_ms.append((time.perf_counter() - t0) * 1000)
                self._stop.wait(WRITER_INTERVAL_S)
            conn.execute(f"DROP TABLE {PROBE_TABLE}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

        return {
            "writer_on": self.label,
            "database": os.fspath(self.db),
            "commits": len(lat),
            "failed": len(self.failures),
            "first_failure": self.failures[0] if self.failures else None,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": lat[-1] if lat else None,
        }


def bench_writer(tree: Tree, scratch_root: Path) -> dict[str, Any]:
    """Time commits to the global database and to one agent database during a default backup
    (verify on), the way the gateway would see them."""
    agent = next((Path(d["source_path"]) for d in tree.databases if d["role"] == "agent"), None)
    targets = [("global database", tree.global_db), ("an agent database", agent)]
    writers = [Writer(label, db) for label, db in targets if db is not None]
    out = scratch_root / "writer-out"
    remove(out)
    for w in writers:
        w.start()
    time.sleep(SETTLE_S)
    started = time.perf_counter()
    proc = subprocess.run(
        backupkit_cmd(
            "--state-dir", str(tree.state_dir), "-q", "backup", "--output", str(out), "--full"
        ),
        capture_output=True,
        text=True,
        check=False,
        env=child_env(),
        cwd=ROOT,
    )
    backup_s = time.perf_counter() - started
    time.sleep(SETTLE_S)
    for w in writers:
        w.stop()
    remove(out)
    rows = [w.summary() for w in writers]
    worst = max((r["max_ms"] or 0.0) for r in rows) if rows else None
    failed = sum(r["failed"] for r in rows)
    err_lines = proc.stderr.strip().splitlines()
    return {
        "tree": tree.spec.label,
        "backup_exit": proc.returncode,
        "backup_error": err_lines[-1] if proc.returncode != 0 and err_lines else None,
        "backup_s": backup_s,
        "writers": rows,
        "target": writer_target(worst, failed, proc.returncode),
    }
