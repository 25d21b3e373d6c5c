"""`restore --target DIR`: a disaster-recovery restore into a fresh directory."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from fixtures import build_state
from tests.conftest import (
    NOBODY,
    Archived,
    backup_ok,
    can_mount_tmpfs,
    can_run_as_nobody,
    fingerprint,
    json_out,
    run_cli,
    run_cli_as_nobody,
    run_cli_process,
    tree_snapshot,
)


def test_round_trip_is_exact_for_every_database_file_mode_and_link(
    archived: Archived, tmp_path: Path
) -> None:
    state, archive = archived.state, archived.archive
    ext_db = state.agent_dbs["external-agent"]
    ext = os.fspath(state.external_dir)
    # Taken before the backup ran, with the state's own paths normalised as below.
    before, ext_before = archived.fingerprint_before, archived.external_fingerprint_before
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
    archived: Archived, tmp_path: Path
) -> None:
    state, archive = archived.state, archived.archive
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
    archived: Archived, tmp_path: Path
) -> None:
    state, archive = archived.state, archived.archive
    target = tmp_path / "restored"
    assert run_cli("restore", archive, "--target", target).returncode == 0
    for cred in state.credential_files:
        restored = target / cred.relative_to(state.root)
        assert stat.S_IMODE(restored.stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "credentials").stat().st_mode) == 0o700
    assert not [p for p in target.rglob("*") if p.name.endswith(("-wal", "-shm", "-journal"))]
    assert (target / "workspace" / "latest-notes").is_symlink()


def test_non_empty_target_exits_2_and_is_left_untouched(archived: Archived, tmp_path: Path) -> None:
    archive = archived.archive
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = tree_snapshot(target)
    proc = run_cli("restore", archive, "--target", target)
    assert proc.returncode == 2
    assert "not empty" in proc.stderr
    assert tree_snapshot(target) == before


def test_a_damaged_archive_is_refused_and_leaves_no_target_behind(
    archived: Archived, tmp_path: Path
) -> None:
    archive = archived.archive
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken = tmp_path / "broken.tar.zst"
    broken.write_bytes(bytes(data))
    target = tmp_path / "restored"
    proc = run_cli("restore", broken, "--target", target)
    assert proc.returncode == 1
    assert "failed verification" in proc.stderr
    assert not target.exists()


def test_dry_run_plans_every_path_and_creates_nothing(archived: Archived, tmp_path: Path) -> None:
    archive = archived.archive
    target = tmp_path / "restored"
    proc = run_cli("restore", archive, "--target", target, "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json_out(proc)
    assert plan["dry_run"] is True and not target.exists()
    paths = {i["path"] for i in plan["items"]}
    assert os.fspath(target / "openclaw.json") in paths
    assert {i["action"] for i in plan["items"]} == {"create"}


def test_agent_option_restores_only_that_agent(archived: Archived, tmp_path: Path) -> None:
    archive = archived.archive
    target = tmp_path / "restored"
    proc = run_cli("restore", archive, "--target", target, "--agent", "retired-agent")
    assert proc.returncode == 0, proc.stderr
    files = {os.fspath(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    assert "agents/Retired Agent/agent/openclaw-agent.sqlite" in files
    assert "agents/Retired Agent/sessions/sessions.json" in files
    assert not [f for f in files if f.startswith(("agents/main", "state/", "credentials"))]


def test_unknown_agent_exits_2(archived: Archived, tmp_path: Path) -> None:
    archive = archived.archive
    proc = run_cli("restore", archive, "--target", tmp_path / "r", "--agent", "nobody")
    assert proc.returncode == 2 and "nobody" in proc.stderr


def test_disk_full_during_restore_leaves_the_target_as_it_was_found(
    archived: Archived, tmp_path: Path
) -> None:
    import resource

    archive = archived.archive
    target = tmp_path / "restored"

    def limit() -> None:  # every agent database is bigger than this
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    # An rlimit is per process: the restore gets a process of its own.
    proc = run_cli_process("restore", archive, "--target", target, preexec_fn=limit)
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


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root and tmpfs mounts")
def test_members_that_together_exceed_the_free_space_are_refused_before_the_disk_fills(
    tmp_path: Path,
) -> None:
    from fixtures.hostile import compress

    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", os.fspath(small)], check=True
    )
    try:
        # Each member fits in what is free; together they do not. The manifest would come last.
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for n in range(3):
                info = tarfile.TarInfo(f"state/blob-{n}")
                info.size = 6 << 20
                tar.addfile(info, io.BytesIO(bytes(info.size)))
        archive = tmp_path / "many.tar.zst"
        archive.write_bytes(compress(raw.getvalue()))
        proc = run_cli("restore", archive, "--target", small / "t")
        assert proc.returncode == 4, proc.stderr
        assert "state/blob-2 needs 6291456 bytes, more than" in proc.stderr
        assert not (small / "t").exists()
        assert shutil.disk_usage(small).free > 15 << 20
    finally:
        subprocess.run(["umount", os.fspath(small)], check=True)


@pytest.mark.skipif(
    not can_run_as_nobody(), reason="needs root, setpriv and a checkout nobody can read"
)
def test_a_directory_without_owner_permissions_comes_back_in_an_unprivileged_restore() -> None:
    base = Path(tempfile.mkdtemp(prefix="backupkit-perm-"))
    try:
        os.chmod(base, 0o755)
        tree = build_state(base / "openclaw", agents=2, with_socket=False)
        closed = tree.root / "workspace-closed"
        closed.mkdir()
        (closed / "note.md").write_text("kept behind a mode-0 directory")
        os.chmod(closed, 0)
        archive = backup_ok(tree, base / "backups")
        os.chmod(base / "backups", 0o755)
        os.chmod(archive, 0o644)
        home = base / "nobody"
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        target = home / "restored"
        proc = run_cli_as_nobody("restore", archive, "--target", target)
        assert proc.returncode == 0, proc.stderr
        assert stat.S_IMODE(os.lstat(target / "workspace-closed").st_mode) == 0
        os.chmod(target / "workspace-closed", 0o700)
        assert (target / "workspace-closed" / "note.md").read_text() == (
            "kept behind a mode-0 directory"
        )
    finally:
        for root, dirs, _files in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o700)
        shutil.rmtree(base, ignore_errors=True)


def test_a_forged_file_listed_under_another_file_is_an_integrity_failure(
    archived: Archived, tmp_path: Path
) -> None:
    from fixtures import hostile

    members = hostile.read_members(archived.archive.read_bytes())
    manifest = hostile.manifest_of(members)
    under = f"{hostile.first_file(manifest)['archive_path']}/x"
    extra = hostile.regular(under, b"x")
    manifest["files"].append(hostile.file_entry(under, b"x"))
    forged = tmp_path / "forged.tar.zst"
    forged.write_bytes(
        hostile.pack(
            hostile.with_manifest(hostile.insert_before_manifest(members, [extra]), manifest)
        )
    )
    target = tmp_path / "restored"
    proc = run_cli("restore", forged, "--target", target)
    assert proc.returncode == 1, proc.stderr
    assert f"{under}: cannot be placed" in proc.stderr
    assert not target.exists()
