"""`restore --in-place`: replace the live state, after a safety snapshot, with nothing lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from fixtures import StateTree
from tests.conftest import (
    backup_ok,
    damage_state,
    fingerprint,
    json_out,
    manifest_of,
    run_cli,
    tree_snapshot,
)


def test_in_place_restore_over_a_damaged_state_gives_back_exactly_the_archived_state(
    state: StateTree, out_dir: Path
) -> None:
    archived = fingerprint(state.root)
    archive = backup_ok(state, out_dir)
    damage_state(state)
    assert fingerprint(state.root) != archived
    proc = run_cli("--state-dir", state.root, "restore", archive, "--in-place", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert fingerprint(state.root) == archived
    zoe = state.agent_dbs["zoe"]
    assert not Path(f"{zoe}-wal").exists()
    assert not [p for p in state.root.rglob(".bk-restore-*")]
    assert not (state.root / "backupkit-restore.journal").exists()


def test_safety_snapshot_is_printed_verified_and_holds_the_state_before_restore(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir)
    damage_state(state)
    proc = run_cli("--state-dir", state.root, "restore", archive, "--in-place", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("safety snapshot: "))
    snapshot = Path(line.removeprefix("safety snapshot: "))
    manifest = manifest_of(snapshot)
    assert manifest["reason"] == "pre-restore"
    assert run_cli("verify", snapshot, "--no-record").returncode == 0
    config = next(f for f in manifest["files"] if f["kind"] == "config")
    assert config["size_bytes"] == len("{ broken")
    conn = sqlite3.connect(f"file:{state.global_db}?mode=ro", uri=True)
    ids = {r[0] for r in conn.execute("SELECT id FROM backup_runs")}
    conn.close()
    assert manifest["backup_id"] in ids, "the ledger must still lead back to the snapshot"


def test_live_files_the_archive_lacks_are_kept_and_listed_or_removed_on_request(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir)
    extra = state.root / "workspace" / "new-since-backup.md"
    extra.write_text("written after the backup")
    proc = run_cli(
        "--state-dir", state.root, "restore", archive, "--in-place", "--json", "--output", out_dir
    )
    report = json_out(proc)
    assert extra.exists()
    assert {"action": "keep", "path": os.fspath(extra)}.items() <= next(
        i for i in report["items"] if i["path"] == os.fspath(extra)
    ).items()
    proc = run_cli(
        "--state-dir",
        state.root,
        "restore",
        archive,
        "--in-place",
        "--delete-extra",
        "--output",
        out_dir,
    )
    assert proc.returncode == 0, proc.stderr
    assert not extra.exists()


def test_a_database_open_in_another_process_is_refused_with_exit_3_unless_forced(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('select 1 from kv')"
            ".fetchall(); print('open', flush=True); sys.stdin.read()",
            os.fspath(state.global_db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        before = fingerprint(state.root)
        proc = run_cli(
            "--state-dir", state.root, "restore", archive, "--in-place", "--output", out_dir
        )
        assert proc.returncode == 3
        assert "gateway" in proc.stderr and "--force" in proc.stderr
        assert fingerprint(state.root) == before
        forced = run_cli(
            "--state-dir",
            state.root,
            "restore",
            archive,
            "--in-place",
            "--force",
            "--output",
            out_dir,
        )
        assert forced.returncode == 0, forced.stderr
    finally:
        holder.communicate("")


def test_in_place_dry_run_plans_create_replace_keep_and_touches_nothing(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir)
    damage_state(state)
    (state.root / "extra.txt").write_text("x")
    before = tree_snapshot(state.root)
    proc = run_cli(
        "--state-dir", state.root, "restore", archive, "--in-place", "--dry-run", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert tree_snapshot(state.root) == before
    actions = {i["path"]: i["action"] for i in json_out(proc)["items"]}
    assert actions[os.fspath(state.legacy_files[0])] == "create"
    assert actions[os.fspath(state.config_path)] == "replace"
    assert actions[os.fspath(state.root / "extra.txt")] == "keep"
    assert all(i["size_bytes"] >= 0 for i in json_out(proc)["items"])


def test_agent_option_replaces_only_that_agent(state: StateTree, out_dir: Path) -> None:
    archive = backup_ok(state, out_dir)
    damage_state(state)
    proc = run_cli(
        "--state-dir",
        state.root,
        "restore",
        archive,
        "--in-place",
        "--agent",
        "main",
        "--output",
        out_dir,
    )
    assert proc.returncode == 0, proc.stderr
    conn = sqlite3.connect(f"file:{state.agent_dbs['main']}?mode=ro", uri=True)
    assert conn.execute("SELECT count(*) FROM session_entries").fetchone()[0] > 0
    conn.close()
    assert state.legacy_files[0].exists()  # main's legacy file is in main's directory
    assert state.config_path.read_text() == "{ broken"  # not this agent's: left alone
