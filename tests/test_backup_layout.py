"""What goes into the archive, under which name and mode, and what is left out."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

from fixtures import StateTree
from tests.conftest import Archived, archive_members, backup_ok, manifest_of, run_cli, umask


def test_no_wal_shm_lock_socket_or_pid_file_is_ever_a_member(archived: Archived) -> None:
    state, archive = archived.state, archived.archive
    names = list(archive_members(archive))
    forbidden = ("-wal", "-shm", "-journal", ".lock", ".pid", ".sock")
    assert not [n for n in names if n.endswith(forbidden)]
    skipped = {s["source_path"]: s["reason"] for s in manifest_of(archive)["skipped"]}
    assert skipped[os.fspath(state.global_db) + "-wal"] == "wal-sidecar"
    assert skipped[os.fspath(state.root / "gateway.pid")] == "pid-file"
    assert skipped[os.fspath(state.root / "state" / "some.lock")] == "lock-file"
    if (state.root / "gateway.sock").exists():
        assert skipped[os.fspath(state.root / "gateway.sock")] == "socket"


def test_backup_lock_file_never_enters_its_own_archive(state: StateTree, out_dir: Path) -> None:
    backup_ok(state, out_dir)  # leaves backupkit.lock behind in the state dir
    assert (state.root / "backupkit.lock").exists()
    archive = backup_ok(state, out_dir)
    assert "state/backupkit.lock" not in archive_members(archive)


def test_symlinks_are_stored_as_links_and_outside_ones_are_listed(archived: Archived) -> None:
    state, archive = archived.state, archived.archive
    members = archive_members(archive)
    rel = members["state/workspace/latest-notes"]
    absolute = members["state/workspace/host-link"]
    assert rel.type == tarfile.SYMTYPE and rel.linkname == "notes.md"
    assert absolute.type == tarfile.SYMTYPE
    assert absolute.linkname == os.readlink(state.root / "workspace" / "host-link")
    links = {link["archive_path"]: link for link in manifest_of(archive)["links"]}
    assert links["state/workspace/host-link"]["outside_state_dir"] is True
    assert links["state/workspace/latest-notes"]["outside_state_dir"] is False
    # The link's target is outside the state dir and must not have been followed into the archive.
    assert not [n for n in members if n.endswith("shared-notes.txt")]


def test_credentials_keep_mode_0600_in_the_archive(archived: Archived) -> None:
    state, archive = archived.state, archived.archive
    members = archive_members(archive)
    files = {f["source_path"]: f for f in manifest_of(archive)["files"]}
    for cred in state.credential_files:
        entry = files[os.fspath(cred)]
        assert entry["mode"] == 0o600
        assert members[entry["archive_path"]].mode & 0o777 == 0o600
        assert entry["kind"] in ("credential", "auth-profile")
    assert members["state/credentials"].mode & 0o777 == 0o700


def test_files_are_classified_by_kind(archived: Archived) -> None:
    state, archive = archived.state, archived.archive
    files = {f["source_path"]: f["kind"] for f in manifest_of(archive)["files"]}
    assert files[os.fspath(state.config_path)] == "config"
    for legacy in state.legacy_files:
        assert files[os.fspath(legacy)] == "legacy"
    assert files[os.fspath(state.root / "workspace" / "notes.md")] == "workspace"
    assert files[os.fspath(state.root / "workspace" / "empty.txt")] == "workspace"


def test_archive_file_is_0600_whatever_the_umask(state: StateTree, out_dir: Path) -> None:
    with umask(0o000):
        proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    archive = Path(proc.stdout.strip())
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


def test_no_workspaces_and_exclude_leave_paths_out_and_say_why(
    state: StateTree, out_dir: Path
) -> None:
    archive = backup_ok(state, out_dir, "--no-workspaces", "--exclude", "*.jsonl")
    names = archive_members(archive)
    assert not [n for n in names if n.startswith("state/workspace")]
    assert not [n for n in names if n.endswith(".jsonl")]
    skipped = {s["source_path"]: s["reason"] for s in manifest_of(archive)["skipped"]}
    assert skipped[os.fspath(state.root / "workspace")] == "no-workspaces"
    assert skipped[os.fspath(state.legacy_files[1])] == "excluded"


def test_config_and_credentials_outside_the_state_dir_go_under_external(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "openclaw.json"
    config.parent.mkdir()
    config.write_text("{ // outside\n}\n")
    creds = tmp_path / "oauth"
    (creds / "slack").mkdir(parents=True)
    (creds / "slack" / "token.json").write_text('{"token": "x"}')
    os.chmod(creds / "slack" / "token.json", 0o600)
    proc = run_cli(
        "--state-dir",
        state.root,
        "backup",
        "--output",
        out_dir,
        env={"OPENCLAW_CONFIG_PATH": os.fspath(config), "OPENCLAW_OAUTH_DIR": os.fspath(creds)},
    )
    assert proc.returncode == 0, proc.stderr
    files = {f["source_path"]: f for f in manifest_of(Path(proc.stdout.strip()))["files"]}
    assert files[os.fspath(config)]["kind"] == "config"
    assert files[os.fspath(config)]["archive_path"] == "external/" + os.fspath(config).lstrip("/")
    token = files[os.fspath(creds / "slack" / "token.json")]
    assert (token["kind"], token["mode"]) == ("credential", 0o600)
    assert token["archive_path"].startswith("external/")
