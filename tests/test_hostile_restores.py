"""Hostile archives and careless operators against restore: every case has its exit code and
the proof that nothing was written outside the allowed places (every place listed before and
after: the whole temporary tree the test runs in, less the places the restore may write)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from backupkit.fsutil import remove_tree
from backupkit.sqlite.connect import sqlite_uri
from fixtures import StateTree, build_state
from fixtures import hostile_restore as forge

from .conftest import REPO, can_mount_tmpfs, cli_env, json_out, peak_rss_mb, run_cli, tree_snapshot


@pytest.fixture
def state(tmp_path: Path) -> StateTree:
    return build_state(tmp_path / "openclaw", agents=2, bytes_per_agent=8192, with_socket=False)


def _backup(state: StateTree, out: Path) -> Path:
    proc = run_cli("--state-dir", state.root, "backup", "--output", out)
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


def _outside(tmp_path: Path, *allowed: Path) -> dict[str, tuple]:
    """Every path under the test's tree that is not in an allowed place."""
    keep = [os.fspath(a) for a in allowed]
    return {
        rel: v
        for rel, v in tree_snapshot(tmp_path).items()
        if not any(os.fspath(tmp_path / rel).startswith(k) for k in keep)
    }


def test_an_in_place_restore_never_writes_where_a_forged_manifest_points(
    state: StateTree, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    target = tmp_path / "etc" / "cron.d" / "evil"
    forged = tmp_path / "forged.tar.zst"
    forged.write_bytes(forge.with_external_file(_backup(state, out).read_bytes(), target, b"* * *"))
    before = _outside(tmp_path, state.root, out)
    proc = run_cli(
        "--state-dir",
        state.root,
        "restore",
        forged,
        "--in-place",
        "--force",
        "--output",
        out,
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert not target.exists() and not target.parent.exists()
    assert _outside(tmp_path, state.root, out) == before
    skipped = [i for i in json_out(proc)["items"] if i["action"] == "skip"]
    assert [i["path"] for i in skipped] == [os.fspath(target)]


def test_an_archive_of_another_state_dir_is_refused_in_place_and_never_touches_that_state(
    tmp_path: Path,
) -> None:
    mine = build_state(tmp_path / "mine", agents=4, bytes_per_agent=4096, with_socket=False)
    theirs = build_state(tmp_path / "theirs", agents=4, bytes_per_agent=4096, with_socket=False)
    out = tmp_path / "out"
    archive = _backup(theirs, out)
    their_external = theirs.agent_dbs["external-agent"]
    before = tree_snapshot(theirs.external_dir), their_external.read_bytes()
    refused = run_cli("--state-dir", mine.root, "restore", archive, "--in-place", "--force")
    assert refused.returncode == 2 and "--from-other-state" in refused.stderr
    proc = run_cli(
        "--state-dir",
        mine.root,
        "restore",
        archive,
        "--in-place",
        "--force",
        "--from-other-state",
        "--output",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tree_snapshot(theirs.external_dir), their_external.read_bytes()) == before


def test_a_member_named_like_the_restore_journal_is_refused_before_anything_is_written(
    state: StateTree, tmp_path: Path
) -> None:
    journal = orjson.dumps({"phase": "committed", "entries": [{"dest": "/etc/passwd"}]})
    forged = tmp_path / "forged.tar.zst"
    forged.write_bytes(
        forge.forge(
            _backup(state, tmp_path / "out").read_bytes(),
            {"state/backupkit-restore.journal": journal},
        )
    )
    target = tmp_path / "restored"
    proc = run_cli("restore", forged, "--target", target)
    assert proc.returncode == 1
    assert "backupkit's own files" in proc.stderr
    assert not target.exists()


def test_a_journal_planted_in_a_restored_dir_is_set_aside_by_the_next_backup(
    state: StateTree, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    target = tmp_path / "restored"
    assert run_cli("restore", _backup(state, tmp_path / "out"), "--target", target).returncode == 0
    aside = tmp_path / ".bk-restore-00000000-x.old"
    aside.write_text("the journal would unlink this")
    planted = {
        "restore_id": "00000000",
        "archive": "/forged",
        "state_dir": os.fspath(target),
        "phase": "committed",
        "entries": [
            {"dest": os.fspath(victim), "staged": None, "aside": os.fspath(aside), "sidecars": []}
        ],
        "created_dirs": [],
        "dir_modes": [],
        "safety_snapshot": None,
    }
    (target / "backupkit-restore.journal").write_bytes(orjson.dumps(planted))
    proc = run_cli("--state-dir", target, "backup", "--output", tmp_path / "out2")
    assert proc.returncode == 0, proc.stderr
    assert "set aside a restore journal" in proc.stderr
    assert victim.read_text() == "keep me" and aside.exists()


def test_a_file_where_the_live_state_has_a_directory_restores_and_nothing_is_wedged(
    state: StateTree, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    todo = state.root / "workspace" / "todo"
    todo.write_text("a file in the archive")
    archive = _backup(state, out)
    todo.unlink()
    (todo / "sub").mkdir(parents=True)
    (todo / "sub" / "note.md").write_text("a directory in the live state")
    proc = run_cli(
        "--state-dir", state.root, "restore", archive, "--in-place", "--force", "--output", out
    )
    assert proc.returncode == 0, proc.stderr
    assert todo.read_text() == "a file in the archive"
    leftovers = [p for p in state.root.rglob(".bk-restore-*")]
    assert leftovers == []
    assert run_cli("--state-dir", state.root, "backup", "--output", out).returncode == 0
    assert (
        run_cli(
            "--state-dir", state.root, "restore", archive, "--in-place", "--force", "--output", out
        ).returncode
        == 0
    )


def test_an_in_place_dry_run_says_would_and_writes_nothing(
    state: StateTree, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    archive = _backup(state, out)
    before = tree_snapshot(tmp_path)
    text = run_cli("--state-dir", state.root, "restore", archive, "--in-place", "--dry-run")
    assert text.returncode == 0 and "would" in text.stdout and " did" not in text.stdout
    body = json_out(
        run_cli("--state-dir", state.root, "restore", archive, "--in-place", "--dry-run", "--json")
    )
    assert body["dry_run"] is True
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["with#hash", "pct%41", "what?x=1", "sp ace"])
def test_a_target_named_with_uri_characters_gets_everything_and_nothing_outside(
    state: StateTree, tmp_path: Path, name: str
) -> None:
    archive = _backup(state, tmp_path / "out")
    parent = tmp_path / "targets"
    parent.mkdir()
    target = parent / name
    proc = run_cli("restore", archive, "--target", target)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(parent)) == [name]
    conn = sqlite3.connect(sqlite_uri(target / "state" / "openclaw.sqlite", mode="ro"), uri=True)
    paths = [r[0] for r in conn.execute("SELECT path FROM agent_databases")]
    conn.close()
    assert paths and all(p.startswith(os.fspath(target)) for p in paths)


def test_a_tree_thousands_of_levels_deep_backs_up_and_restores(
    state: StateTree, tmp_path: Path
) -> None:
    fd = os.open(state.root / "workspace", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1100):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    with open(os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as fh:
        fh.write("at the bottom")
    os.close(fd)
    target = tmp_path / "restored"
    try:
        archive = _backup(state, tmp_path / "out")
        proc = run_cli("restore", archive, "--target", target)
        assert proc.returncode == 0, proc.stderr
        deep = os.path.join(os.fspath(target / "workspace"), *(["d"] * 1100), "deep.txt")
        with open(deep) as fh:
            assert fh.read() == "at the bottom"
    finally:  # pytest's own clean-up of old temp dirs recurses, and would fail on this tree
        remove_tree(state.root / "workspace" / "d")
        remove_tree(target / "workspace" / "d")


@pytest.mark.parametrize("command", [("show",), ("verify", "--no-record")])
def test_a_decompression_bomb_header_is_refused_within_bounded_memory(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    bomb = tmp_path / "openclaw-backup-20260101T000000Z-00000000.tar.zst"
    forge.pax_bomb(bomb, 512 << 20)
    assert bomb.stat().st_size < 64 << 10
    code, mb = peak_rss_mb(command[0], bomb, *command[1:])
    assert code == 1 and mb < 256, (code, mb)


def test_list_and_prune_survive_a_bomb_in_the_backup_directory(
    state: StateTree, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _backup(state, out)
    forge.pax_bomb(out / "openclaw-backup-20260101T000000Z-00000000.tar.zst", 512 << 20)
    code, mb = peak_rss_mb("--state-dir", state.root, "list", "--output", out)
    assert code == 0 and mb < 256
    code, mb = peak_rss_mb(
        "--state-dir", state.root, "prune", "--output", out, "--keep-last", "1", "--dry-run"
    )
    assert code == 0 and mb < 256


IDLE_READER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM log").fetchone()
print("open", flush=True)
sys.stdin.read()
"""


def test_an_idle_connection_to_a_rollback_journal_database_blocks_an_in_place_restore(
    state: StateTree, tmp_path: Path
) -> None:
    db = state.root / "workspace" / "tool.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("CREATE TABLE log (x)")
    conn.commit()
    conn.close()
    out = tmp_path / "out"
    archive = _backup(state, out)
    reader = subprocess.Popen(
        [sys.executable, "-c", IDLE_READER, db],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        proc = run_cli("--state-dir", state.root, "restore", archive, "--in-place", "--output", out)
        assert proc.returncode == 3 and "tool.db" in proc.stderr
    finally:
        reader.communicate("")


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root and tmpfs mounts")
def test_verify_refuses_a_database_copy_its_temp_dir_cannot_hold_and_leaves_it_empty(
    tmp_path: Path,
) -> None:
    state = build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=4 << 20, with_socket=False)
    archive = _backup(state, tmp_path / "out")
    small_tmp = tmp_path / "tmp"
    small_tmp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", small_tmp], check=True)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "backupkit", "verify", archive, "--no-record"],
            env=cli_env({"TMPDIR": os.fspath(small_tmp)}),
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode == 4, proc.stderr
        assert "temporary space" in proc.stderr and "TMPDIR" in proc.stderr
        assert os.listdir(small_tmp) == [], "nothing is left in the temp dir"
    finally:
        subprocess.run(["umount", small_tmp], check=True)
