"""The gateway keeps writing during a backup: no write fails, every snapshot is a clean prefix."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fixtures import StateTree
from tests.conftest import backup_ok, extract_with_tar, manifest_of

WRITER = """
import sqlite3, sys, time
path, stop = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(path, timeout=30, isolation_level=None)
conn.execute("PRAGMA busy_timeout=30000")
conn.execute("CREATE TABLE IF NOT EXISTS writer_log(n INTEGER PRIMARY KEY, a TEXT, b TEXT)")
n = failures = 0
import os
while not os.path.exists(stop):
    n += 1
    try:
        conn.execute("BEGIN IMMEDIATE")
        # Two rows per transaction: a torn snapshot would hold one without the other.
        conn.execute("INSERT INTO writer_log(n, a) VALUES (?, 'first')", (2 * n,))
        conn.execute("INSERT INTO writer_log(n, b) VALUES (?, 'second')", (2 * n + 1,))
        conn.execute("COMMIT")
    except sqlite3.Error as err:
        failures += 1
        print("write failed:", err, file=sys.stderr)
print(n, failures)
"""


def test_backup_during_continuous_writes_loses_no_write_and_tears_no_transaction(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, os.fspath(db), os.fspath(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for db in (state.global_db, state.agent_dbs["main"])
    ]
    time.sleep(0.3)
    try:
        archive = backup_ok(state, out_dir)
    finally:
        stop.touch()
    results = [w.communicate(timeout=60) for w in writers]
    for stdout, stderr in results:
        commits, failures = map(int, stdout.split())
        assert failures == 0, stderr
        assert commits > 0
    extract_with_tar(archive, tmp_path / "x")
    by_source = {d["source_path"]: d["archive_path"] for d in manifest_of(archive)["databases"]}
    for db in (state.global_db, state.agent_dbs["main"]):
        snap = sqlite3.connect(tmp_path / "x" / by_source[os.fspath(db)])
        assert snap.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ns = [r[0] for r in snap.execute("SELECT n FROM writer_log ORDER BY n")]
        snap.close()
        assert ns, "the snapshot should hold some of the writer's commits"
        assert ns == list(range(2, 2 + len(ns))), "not a prefix of the commits, or torn"
        assert len(ns) % 2 == 0
