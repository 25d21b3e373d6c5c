"""`restore --target DIR`: a disaster-recovery restore into a fresh directory."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from fixtures import StateTree
from tests.conftest import backup_ok, fingerprint, json_out, run_cli, tree_snapshot


def test_round_trip_is_exact_for_every_database_file_mode_and_link(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    ext_db = state.agent_dbs["external-agent"]
    ext = os.fspath(state.external_dir)
    before = fingerprint(state.root, replace={ext: "<ext>", os.fspath(state.root): "<state>"})
    ext_before = fingerprint(ext_db.parent)
    archive = backup_ok(state, out_dir)
    target = tmp_path / "restored"
    proc = run_cli("restore", archive, "--target", target)
    assert proc.returncode == 0, proc.stderr
    moved_ext = os.fspath(target / "external") + ext
    after = fingerprint(target, replace={moved_ext: "<ext>", os.fspath(target): "<state>"})
    ext_in_target = target / "external" / os.fspath(ext_db.parent).lstrip("/")
    after = {k: v for k, v in after.items() if not k.startswith("external")}
    assert after == before
    assert fingerprint(ext_in_target) == ext_before


def test_registry_paths_point_at_where_each_database_now_stands(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    target = tmp_path / "restored"
    assert run_cli("restore", archive, "--target", target).returncode == 0
    conn = sqlite3.connect(f"file:{target / 'state' / 'openclaw.sqlite'}?mode=ro", uri=True)
    rows = dict(conn.execute("SELECT agent_id, path FROM agent_databases").fetchall())
    other = conn.execute("SELECT agent_id, schema_version FROM agent_databases").fetchall()
    conn.close()
    assert rows["main"] == os.fspath(target / "agents" / "main" / "agent" / "openclaw-agent.sqlite")
    ext = state.agent_dbs["external-agent"]
    assert rows["external-agent"] == os.fspath(target / "external" / os.fspath(ext).lstrip("/"))
    assert all(Path(p).is_file() for p in rows.values())
    assert all(version == 1 for _a, version in other)  # every other column kept


def test_credentials_stay_0600_and_no_sidecar_stands_beside_a_database(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    target = tmp_path / "restored"
    assert run_cli("restore", archive, "--target", target).returncode == 0
    for cred in state.credential_files:
        restored = target / cred.relative_to(state.root)
        assert stat.S_IMODE(restored.stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "credentials").stat().st_mode) == 0o700
    assert not [p for p in target.rglob("*") if p.name.endswith(("-wal", "-shm", "-journal"))]
    assert (target / "workspace" / "latest-notes").is_symlink()


def test_non_empty_target_exits_2_and_is_left_untouched(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = tree_snapshot(target)
    proc = run_cli("restore", archive, "--target", target)
    assert proc.returncode == 2
    assert "not empty" in proc.stderr
    assert tree_snapshot(target) == before


def test_a_damaged_archive_is_refused_and_leaves_no_target_behind(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken = tmp_path / "broken.tar.zst"
    broken.write_bytes(bytes(data))
    target = tmp_path / "restored"
    proc = run_cli("restore", broken, "--target", target)
    assert proc.returncode == 1
    assert "failed verification" in proc.stderr
    assert not target.exists()


def test_dry_run_plans_every_path_and_creates_nothing(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    target = tmp_path / "restored"
    proc = run_cli("restore", archive, "--target", target, "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json_out(proc)
    assert plan["dry_run"] is True and not target.exists()
    paths = {i["path"] for i in plan["items"]}
    assert os.fspath(target / "openclaw.json") in paths
    assert {i["action"] for i in plan["items"]} == {"create"}


def test_agent_option_restores_only_that_agent(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    target = tmp_path / "restored"
    proc = run_cli("restore", archive, "--target", target, "--agent", "retired-agent")
    assert proc.returncode == 0, proc.stderr
    files = {os.fspath(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert "agents/Retired Agent/agent/openclaw-agent.sqlite" in files
    assert "agents/Retired Agent/sessions/sessions.json" in files
    assert not [f for f in files if f.startswith(("agents/main", "state/", "credentials"))]


def test_unknown_agent_exits_2(state: StateTree, out_dir: Path, tmp_path: Path) -> None:
    archive = backup_ok(state, out_dir)
    proc = run_cli("restore", archive, "--target", tmp_path / "r", "--agent", "nobody")
    assert proc.returncode == 2 and "nobody" in proc.stderr


def test_disk_full_during_restore_leaves_the_target_as_it_was_found(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    import resource

    archive = backup_ok(state, out_dir)
    target = tmp_path / "restored"

    def limit() -> None:  # every agent database is bigger than this
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    proc = run_cli("restore", archive, "--target", target, preexec_fn=limit)
    assert proc.returncode == 4, proc.stderr
    assert "disk full" in proc.stderr
    assert not target.exists()


def test_a_member_bigger_than_the_free_space_is_refused_before_it_is_written(
    tmp_path: Path,
) -> None:
    import tarfile

    from fixtures.hostile import compress

    # A header that declares a terabyte: the spool must refuse it on sight, not fill the disk.
    info = tarfile.TarInfo("state/openclaw.json")
    info.size = 1 << 40
    archive = tmp_path / "huge.tar.zst"
    archive.write_bytes(compress(info.tobuf(tarfile.PAX_FORMAT) + b"{}" * 8192))
    target = tmp_path / "restored"
    proc = run_cli("restore", archive, "--target", target)
    assert proc.returncode == 4, proc.stderr
    assert "needs 1099511627776 bytes" in proc.stderr
    assert not target.exists()
