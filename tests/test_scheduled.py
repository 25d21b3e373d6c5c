"""Unattended use: prune, list, status and schedule on real archives and a real ledger."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from freezegun import freeze_time

import backupkit
from backupkit.ops.status import backup_status
from fixtures import StateTree, build_state
from tests.conftest import REPO, json_out, manifest_of, run_cli


@pytest.fixture
def small(tmp_path: Path) -> StateTree:
    return build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=8 * 1024, with_socket=False)


def _backup_at(state: StateTree, out: Path, when: str, reason: str = "scheduled") -> Path:
    with freeze_time(when):
        return backupkit.create_backup(state.root, output=out, reason=reason).archive


def _ledger(state: StateTree) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{state.global_db}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT id, status FROM backup_runs"))
    finally:
        conn.close()


def test_prune_dry_run_says_what_it_keeps_and_why_and_deletes_nothing(
    small: StateTree, out_dir: Path
) -> None:
    archives = [_backup_at(small, out_dir, f"2026-03-0{d} 03:00:00") for d in (1, 2, 3, 4)]
    proc = run_cli(
        "--state-dir",
        small.root,
        "prune",
        "--output",
        out_dir,
        "--keep-daily",
        "2",
        "--dry-run",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json_out(proc)
    assert [i["archive"] for i in report["kept"]] == [str(a) for a in archives[:1:-1]]
    assert {i["archive"] for i in report["removed"]} == {str(a) for a in archives[:2]}
    assert all("keep-daily" in i["why"] for i in report["kept"])
    assert all(a.exists() for a in archives)


def test_prune_deletes_and_marks_the_ledger(small: StateTree, out_dir: Path) -> None:
    archives = [_backup_at(small, out_dir, f"2026-03-0{d} 03:00:00") for d in (1, 2, 3)]
    proc = run_cli("--state-dir", small.root, "prune", "--output", out_dir, "--keep-last", "1")
    assert proc.returncode == 0, proc.stderr
    assert [a.exists() for a in archives] == [False, False, True]
    ledger = _ledger(small)
    ids = [a.name.removeprefix("openclaw-backup-").removesuffix(".tar.zst") for a in archives]
    assert [ledger[i] for i in ids] == ["pruned", "pruned", "ok"]


def test_prune_never_deletes_the_newest_archive_whose_last_verify_succeeded(
    small: StateTree, out_dir: Path
) -> None:
    older = _backup_at(small, out_dir, "2026-03-01 03:00:00")
    with freeze_time("2026-03-02 03:00:00"):
        newest = backupkit.create_backup(small.root, output=out_dir, verify=False).archive
    # The newest archive rots: its last verify fails. The older one stays the newest proven.
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    assert not backupkit.verify_archive(newest).ok
    report = json_out(
        run_cli(
            "--state-dir", small.root, "prune", "--output", out_dir, "--keep-last", "1", "--json"
        )
    )
    kept = {i["archive"]: i["why"] for i in report["kept"]}
    assert "newest verified archive" in kept[str(older)]
    assert older.exists() and newest.exists()


def test_prune_keeps_safety_snapshots_unless_asked(small: StateTree, out_dir: Path) -> None:
    snap = _backup_at(small, out_dir, "2026-03-01 03:00:00", reason="pre-migration")
    _backup_at(small, out_dir, "2026-03-02 03:00:00")
    _backup_at(small, out_dir, "2026-03-03 03:00:00")
    run_cli("--state-dir", small.root, "prune", "--output", out_dir, "--keep-last", "1")
    assert snap.exists()
    proc = run_cli(
        "--state-dir",
        small.root,
        "prune",
        "--output",
        out_dir,
        "--keep-last",
        "1",
        "--reason",
        "pre-migration",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert snap.exists(), "the only pre-migration snapshot is the newest of its reason"


def test_prune_never_touches_a_file_it_did_not_make(small: StateTree, out_dir: Path) -> None:
    _backup_at(small, out_dir, "2026-03-02 03:00:00")
    impostor = out_dir / "openclaw-backup-20200101T000000Z-deadbeef.tar.zst"
    impostor.write_bytes(os.urandom(4096))
    other = out_dir / "notes.txt"
    other.write_text("mine")
    proc = run_cli(
        "--state-dir", small.root, "prune", "--output", out_dir, "--keep-last", "1", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert impostor.exists() and other.exists()
    why = {i["archive"]: i["why"] for i in json_out(proc)["kept"]}
    assert "not provably this state dir's archive" in why[str(impostor)]


def test_prune_refuses_an_empty_policy(small: StateTree, out_dir: Path) -> None:
    proc = run_cli("--state-dir", small.root, "prune", "--output", out_dir)
    assert proc.returncode == 2
    assert "empty retention policy" in proc.stderr


def test_backup_prune_applies_retention_after_a_verified_backup(
    small: StateTree, out_dir: Path
) -> None:
    old = _backup_at(small, out_dir, "2026-03-01 03:00:00")
    proc = run_cli(
        "--state-dir", small.root, "backup", "--output", out_dir, "--prune", "last=1", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    body = json_out(proc)
    assert body["pruned"] == [str(old)] and not old.exists()
    refused = run_cli(
        "--state-dir", small.root, "backup", "--output", out_dir, "--prune", "last=1", "--no-verify"
    )
    assert refused.returncode == 2 and "verified" in refused.stderr


def test_list_merges_disk_and_ledger_newest_first_with_flags(
    small: StateTree, out_dir: Path
) -> None:
    first = _backup_at(small, out_dir, "2026-03-01 03:00:00")
    second = _backup_at(small, out_dir, "2026-03-02 03:00:00")
    first.unlink()  # the ledger lists it; the disk lost it
    stray = out_dir / second.name.replace("20260302T030000Z", "20260303T030000Z")
    stray.write_bytes(second.read_bytes())  # on disk, unknown to the ledger (and not provably ours)
    proc = run_cli("--state-dir", small.root, "list", "--output", out_dir, "--json")
    archives = json_out(proc)["archives"]
    assert [a["created_at"][:10] for a in archives] == ["2026-03-03", "2026-03-02", "2026-03-01"]
    assert archives[0]["in_ledger"] is False
    assert archives[1]["last_check"]["ok"] is True
    assert archives[2]["on_disk"] is False
    human = run_cli("--state-dir", small.root, "list", "--output", out_dir).stdout
    assert "MISSING" in human and "not in the ledger" in human and "read-back ok" in human


def test_status_is_green_when_fresh_and_red_when_old(small: StateTree, out_dir: Path) -> None:
    backupkit.create_backup(small.root, output=out_dir)
    proc = run_cli("--state-dir", small.root, "status", "--output", out_dir, "--max-age", "1h")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK")
    later = datetime.now().timestamp() + 3 * 86400
    with freeze_time(datetime.fromtimestamp(later)):
        report = backup_status(small.root, output=out_dir, max_age="2d")
    assert not report.ok and "older than 2d" in report.problems[0]


def test_status_turns_red_when_the_last_run_failed(small: StateTree, out_dir: Path) -> None:
    backupkit.create_backup(small.root, output=out_dir)
    bad = small.agent_dbs["main"]
    for side in ("-wal", "-shm"):
        Path(f"{bad}{side}").unlink(missing_ok=True)
    bad.write_bytes(b"garbage" * 100)
    assert run_cli("--state-dir", small.root, "backup", "--output", out_dir).returncode == 1
    proc = run_cli("--state-dir", small.root, "status", "--output", out_dir, "--json")
    assert proc.returncode == 1
    body = orjson.loads(proc.stdout)
    assert body["ok"] is False and body["last_run_status"] == "failed"
    assert "failed" in proc.stderr


def test_status_with_no_backups_is_red(small: StateTree, out_dir: Path) -> None:
    proc = run_cli("--state-dir", small.root, "status", "--output", out_dir)
    assert proc.returncode == 1
    assert "no good backup" in proc.stdout


def test_systemd_units_run_a_working_backup(small: StateTree, out_dir: Path) -> None:
    proc = run_cli(
        "--state-dir",
        small.root,
        "schedule",
        "--systemd",
        "--output",
        out_dir,
        "--prune",
        "daily=7,weekly=4",
    )
    assert proc.returncode == 0, proc.stderr
    units = proc.stdout
    for needed in (
        "Persistent=true",
        "RandomizedDelaySec=30min",
        "OnCalendar=*-*-* 03:00:00",
        "Type=oneshot",
        "WantedBy=timers.target",
        "--prune daily=7,weekly=4",
    ):
        assert needed in units
    exec_start = next(x for x in units.splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    ran = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.fspath(REPO)}
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""  # -q: a good run has nothing to complain about
    assert Path(ran.stdout.strip()).parent == out_dir


def test_cron_line_runs_a_working_backup(small: StateTree, out_dir: Path) -> None:
    proc = run_cli(
        "--state-dir", small.root, "schedule", "--cron", "--at", "02:45", "--output", out_dir
    )
    line = next(x for x in proc.stdout.splitlines() if not x.startswith("#"))
    minute, hour, dom, month, dow, command = line.split(" ", 5)
    assert (minute, hour, dom, month, dow) == ("45", "2", "*", "*", "*")
    ran = subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.fspath(REPO)},
    )
    assert ran.returncode == 0, ran.stderr
    assert [p for p in out_dir.iterdir() if p.name.endswith(".tar.zst")]


def _sources(archive: Path) -> set[str]:
    manifest = manifest_of(archive)
    return {e["source_path"] for e in manifest["files"] + manifest["databases"]}


def test_the_cron_line_carries_every_setting_and_captures_the_same_in_a_clean_environment(
    small: StateTree, tmp_path: Path
) -> None:
    config = tmp_path / "etc" / "openclaw.json"
    config.parent.mkdir()
    config.write_text('{"gateway": {"port": 18789}}\n')
    creds = tmp_path / "etc" / "oauth"
    creds.mkdir(mode=0o700)
    (creds / "token.json").write_text('{"token": "t"}\n')
    out = tmp_path / "archives"
    env = {
        "OPENCLAW_CONFIG_PATH": str(config),
        "OPENCLAW_OAUTH_DIR": str(creds),
        "BACKUPKIT_DIR": str(out),
    }
    interactive = run_cli("--state-dir", small.root, "backup", env=env)
    assert interactive.returncode == 0, interactive.stderr
    proc = run_cli("--state-dir", small.root, "schedule", "--cron", env=env)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if not x.startswith("#"))
    command = line.split(" ", 5)[5]
    ran = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", "sh", "-c", command], capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    archives = sorted(out.glob("*.tar.zst"))
    assert len(archives) == 2
    assert _sources(archives[1]) == _sources(archives[0])
    assert {str(config), str(creds / "token.json")} <= _sources(archives[1])


def test_systemd_units_escape_percent_and_dollar_in_paths(tmp_path: Path) -> None:
    state = build_state(tmp_path / "st%ate$HOME", agents=1, bytes_per_agent=4096, with_socket=False)
    out = tmp_path / "out%d"
    proc = run_cli("--state-dir", state.root, "schedule", "--systemd", "--output", out)
    assert proc.returncode == 0, proc.stderr
    exec_start = next(x for x in proc.stdout.splitlines() if x.startswith("ExecStart="))
    assert "st%%ate$$HOME" in exec_start and "out%%d" in exec_start
    # What systemd would run: specifiers and variables unescaped, then split like a shell word.
    unescaped = exec_start.removeprefix("ExecStart=").replace("%%", "%").replace("$$", "$")
    ran = subprocess.run(
        shlex.split(unescaped),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.fspath(REPO)},
    )
    assert ran.returncode == 0, ran.stderr
    assert Path(ran.stdout.strip()).parent == out
