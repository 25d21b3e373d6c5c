"""Read-only commands never create, modify or leave behind a file in the state dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fixtures import StateTree
from tests.conftest import backup_ok, run_cli, tree_snapshot


def _read_only_commands(state: StateTree, out_dir: Path, archive: Path, tmp: Path) -> list[tuple]:
    s = ("--state-dir", state.root)
    return [
        (*s, "list", "--output", out_dir),
        (*s, "list", "--output", out_dir, "--json"),
        (*s, "status", "--output", out_dir),
        (*s, "status", "--output", out_dir, "--json"),
        ("show", archive),
        ("show", archive, "--json"),
        (*s, "verify", archive, "--no-record"),
        (*s, "backup", "--dry-run", "--output", out_dir),
        (*s, "restore", archive, "--in-place", "--dry-run"),
        ("restore", archive, "--target", tmp / "never", "--dry-run"),
        (*s, "prune", "--output", out_dir, "--keep-last", "1", "--dry-run"),
    ]


def test_read_only_commands_leave_the_state_dir_exactly_as_it_was(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    backup_ok(state, out_dir)
    # The backup left the databases checkpointed and closed; put WAL content back, as a running
    # gateway would, so that reading it is the hard case.
    for db in state.agent_dbs.values():
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sqlite3,sys,os; c=sqlite3.connect(sys.argv[1]);"
                "c.execute('pragma wal_autocheckpoint=0');"
                "c.execute(\"insert into kv values ('t','k','1',0)\"); c.commit();"
                "os._exit(0)",
                os.fspath(db),
            ],
            check=True,
        )
    before = tree_snapshot(state.root)
    outputs_before = sorted(os.listdir(out_dir))
    for args in _read_only_commands(state, out_dir, archive, tmp_path):
        proc = run_cli(*args)
        assert proc.returncode in (0, 1), (args, proc.stderr)
        assert tree_snapshot(state.root) == before, f"{args[2:4]} changed the state dir"
    assert sorted(os.listdir(out_dir)) == outputs_before
    assert not (tmp_path / "never").exists()
