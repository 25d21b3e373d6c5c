"""`backup --dry-run` shows the whole plan and writes nothing at all."""

from __future__ import annotations

import os
from pathlib import Path

from fixtures import StateTree
from tests.conftest import json_out, run_cli, tree_snapshot


def test_dry_run_leaves_state_and_output_exactly_as_they_were(
    state: StateTree, out_dir: Path
) -> None:
    before = tree_snapshot(state.root)
    before_ext = tree_snapshot(state.external_dir)
    proc = run_cli("--state-dir", state.root, "backup", "--dry-run", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert tree_snapshot(state.root) == before
    assert tree_snapshot(state.external_dir) == before_ext
    assert not out_dir.exists()


def test_dry_run_creates_no_sidecar_even_for_a_wal_without_shm(
    state: StateTree, out_dir: Path
) -> None:
    # SQLite would create a -shm to read this WAL; a preview must read it some other way.
    os.remove(f"{state.global_db}-shm")
    before = tree_snapshot(state.root)
    proc = run_cli("--state-dir", state.root, "backup", "--dry-run", "--json", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert tree_snapshot(state.root) == before
    # The registry still had to be read: the external agent is found only through it.
    plan = json_out(proc)
    assert "external-agent" in {d["agent_id"] for d in plan["databases"]}


def test_dry_run_says_what_would_be_captured_and_why(state: StateTree, out_dir: Path) -> None:
    plan = json_out(
        run_cli("--state-dir", state.root, "backup", "--dry-run", "--json", "--output", out_dir)
    )
    assert plan["dry_run"] is True
    dbs = {d["source_path"]: d for d in plan["databases"]}
    assert dbs[os.fspath(state.global_db)]["found_by"] == "global database path"
    assert "agent_databases" in dbs[os.fspath(state.agent_dbs["external-agent"])]["found_by"]
    assert "agents/Retired Agent" in dbs[os.fspath(state.agent_dbs["retired-agent"])]["found_by"]
    kinds = {f["kind"] for f in plan["files"]}
    assert {"config", "credential", "auth-profile", "workspace", "legacy"} <= kinds
    assert "wal-sidecar" in {s["reason"] for s in plan["skipped"]}


def test_human_dry_run_names_each_database(state: StateTree, out_dir: Path) -> None:
    proc = run_cli("--state-dir", state.root, "backup", "--dry-run", "--output", out_dir)
    assert proc.returncode == 0
    for db in state.agent_dbs.values():
        assert os.fspath(db) in proc.stdout
    assert "nothing was written" in proc.stdout
