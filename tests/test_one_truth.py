"""One truth: backup, verify, restore, list, status and prune never disagree about an archive,
and every run leaves a ledger row that monitoring can see."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import orjson
import pytest

from fixtures import StateTree, build_state

from .conftest import backup_ok, json_out, live_rows, manifest_of, run_cli


def _fk_violation(db: Path) -> None:
    """One orphan row, as the gateway's tools (foreign_keys off) can leave; it stays in the WAL."""
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO transcript_event_identities VALUES ('no-such-session', 'e1', 999, 0)")
    conn.commit()
    conn.close()


def _statuses(state: StateTree) -> list[str]:
    conn = sqlite3.connect(f"file:{state.global_db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT status FROM backup_runs ORDER BY created_at")]
    finally:
        conn.close()


@pytest.fixture
def small(tmp_path: Path) -> StateTree:
    return build_state(tmp_path / "openclaw", agents=2, bytes_per_agent=8 * 1024, with_socket=False)


def test_a_foreign_key_violation_is_a_finding_and_the_archive_restores_exactly(
    small: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    db = small.agent_dbs["main"]
    _fk_violation(db)
    proc = run_cli("--state-dir", small.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert "foreign key violations: 1 in transcript_event_identities" in proc.stderr
    archive = Path(proc.stdout.strip())
    entry = next(d for d in manifest_of(archive)["databases"] if d["source_path"] == str(db))
    assert entry["integrity"] == "ok" and entry["findings"]
    verify = run_cli("--state-dir", small.root, "verify", archive)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "foreign key violations" in verify.stderr
    target = tmp_path / "restored"
    restore = run_cli("restore", archive, "--target", target)
    assert restore.returncode == 0, restore.stderr
    assert "foreign key violations" in restore.stderr
    restored = target / db.relative_to(small.root)
    assert (
        live_rows(restored)["transcript_event_identities"]
        == live_rows(db)["transcript_event_identities"]
    )


def test_a_faithful_archive_whose_findings_were_forged_away_fails_verify(
    small: StateTree, out_dir: Path
) -> None:
    from fixtures import hostile

    _fk_violation(small.agent_dbs["main"])
    archive = backup_ok(small, out_dir)
    members = hostile.read_members(archive.read_bytes())
    manifest = hostile.manifest_of(members)
    manifest["sealed"] = False  # a forger re-packs without the seal; verify allows that
    for d in manifest["databases"]:
        d["findings"] = []
    forged = out_dir / "forged.tar.zst"
    forged.write_bytes(hostile.pack(hostile.with_manifest(members, manifest)))
    proc = run_cli("verify", forged, "--no-record")
    assert proc.returncode == 1
    assert "findings" in proc.stdout


def test_a_file_named_like_a_database_is_a_finding_and_every_restore_works(
    small: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    junk = small.root / "state" / "plugin-cache.sqlite"
    junk.write_bytes(b"not a database, just a plugin's text file\n" * 10)
    proc = run_cli("--state-dir", small.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert "named like a database" in proc.stderr
    archive = Path(proc.stdout.strip())
    assert run_cli("verify", archive, "--no-record").returncode == 0
    whole = run_cli("restore", archive, "--target", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    assert (tmp_path / "whole" / "state" / "plugin-cache.sqlite").read_bytes() == junk.read_bytes()
    one = run_cli("restore", archive, "--target", tmp_path / "one", "--agent", "main")
    assert one.returncode == 0, one.stderr


def test_a_corrupt_live_database_fails_the_backup_and_status_but_the_rest_restores(
    small: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    bad = small.agent_dbs["main"]
    for side in (f"{bad}-wal", f"{bad}-shm"):
        if os.path.exists(side):
            os.remove(side)
    data = bytearray(bad.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data) - page, 3 * page):
        data[offset : offset + 16] = b"\xff" * 16
    bad.write_bytes(bytes(data))
    proc = run_cli("--state-dir", small.root, "backup", "--output", out_dir)
    assert proc.returncode == 1
    archive = Path(proc.stdout.strip())
    assert archive.is_file(), "the archive is kept"
    status = run_cli("--state-dir", small.root, "status", "--output", out_dir)
    assert status.returncode == 1 and "failed" in status.stdout
    assert run_cli("verify", archive, "--no-record").returncode == 0, "the archive is faithful"
    others = [a for a in small.agent_dbs if a != "main"]
    one = run_cli("restore", archive, "--target", tmp_path / "r", "--agent", others[0])
    assert one.returncode == 0, one.stderr


def test_a_verify_that_never_reaches_the_manifest_turns_status_red_and_guards_prune(
    small: StateTree, out_dir: Path
) -> None:
    good = backup_ok(small, out_dir)
    newest = backup_ok(small, out_dir)
    data = bytearray(newest.read_bytes())
    for offset in range(200, 240):
        data[offset] ^= 0xFF
    newest.write_bytes(bytes(data))
    proc = run_cli("--state-dir", small.root, "verify", newest)
    assert proc.returncode == 1
    status = run_cli("--state-dir", small.root, "status", "--json")
    assert status.returncode == 1
    body = json_out(status)
    assert any("verify of the newest good archive failed" in p for p in body["problems"])
    pruned = run_cli(
        "--state-dir", small.root, "prune", "--output", out_dir, "--keep-last", "1", "--json"
    )
    assert pruned.returncode == 0, pruned.stderr
    assert good.exists(), "the newest archive that passed its last check is never pruned"


def test_a_failed_backup_is_recorded_even_where_archive_path_is_not_null(
    small: StateTree, tmp_path: Path
) -> None:
    conn = sqlite3.connect(small.global_db)
    conn.execute("DROP TABLE IF EXISTS backup_runs")
    conn.execute(
        "CREATE TABLE backup_runs (id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, "
        "archive_path TEXT NOT NULL, status TEXT NOT NULL, manifest_json TEXT NOT NULL)"
    )
    conn.commit()
    conn.close()
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the output directory should be")
    proc = run_cli("--state-dir", small.root, "backup", "--output", blocked / "sub")
    assert proc.returncode != 0
    assert _statuses(small) == ["failed"]
    status = run_cli("--state-dir", small.root, "status")
    assert status.returncode == 1 and "failed" in status.stdout


def test_a_ledger_table_without_manifest_json_still_gets_a_row(
    small: StateTree, out_dir: Path
) -> None:
    conn = sqlite3.connect(small.global_db)
    conn.execute("DROP TABLE IF EXISTS backup_runs")
    conn.execute(
        "CREATE TABLE backup_runs (id TEXT PRIMARY KEY, created_at INTEGER, "
        "archive_path TEXT, status TEXT, finished_at INTEGER NOT NULL)"
    )
    conn.commit()
    conn.close()
    backup_ok(small, out_dir)
    assert _statuses(small) == ["ok", "read-back-ok"]
    assert run_cli("--state-dir", small.root, "status", "--output", out_dir).returncode == 0


def test_a_ledger_row_that_is_not_json_is_a_problem_status_reports(
    small: StateTree, out_dir: Path
) -> None:
    backup_ok(small, out_dir)
    conn = sqlite3.connect(small.global_db)
    conn.execute(
        "INSERT INTO backup_runs VALUES ('verify:x:1', 1, '/nowhere', 'verify-failed', '{bad')"
    )
    conn.commit()
    conn.close()
    status = run_cli("--state-dir", small.root, "status", "--output", out_dir)
    assert status.returncode == 1 and "not JSON" in status.stdout
    listed = run_cli("--state-dir", small.root, "list", "--output", out_dir)
    assert listed.returncode == 0 and "not JSON" in listed.stderr


def test_status_finds_an_archive_written_elsewhere_through_the_ledger(
    small: StateTree, tmp_path: Path
) -> None:
    backup_ok(small, tmp_path / "elsewhere")
    status = run_cli("--state-dir", small.root, "status")
    assert status.returncode == 0, status.stdout + status.stderr


def test_a_missing_newest_good_archive_turns_status_red(small: StateTree, out_dir: Path) -> None:
    backup_ok(small, out_dir)
    newest = backup_ok(small, out_dir)
    newest.unlink()
    status = run_cli("--state-dir", small.root, "status", "--output", out_dir)
    assert status.returncode == 1 and "gone" in status.stdout


def test_two_state_dirs_sharing_one_output_dir_never_prune_or_list_each_other(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    a = build_state(tmp_path / "a", agents=1, bytes_per_agent=4096, with_socket=False)
    b = build_state(tmp_path / "b", agents=1, bytes_per_agent=4096, with_socket=False)
    theirs = [backup_ok(b, shared) for _ in range(2)]
    mine = [backup_ok(a, shared) for _ in range(2)]
    proc = run_cli("--state-dir", a.root, "prune", "--output", shared, "--keep-last", "1")
    assert proc.returncode == 0, proc.stderr
    assert all(p.exists() for p in theirs), "another state dir's archives are never pruned"
    assert mine[-1].exists() and not mine[0].exists()
    listed = json_out(run_cli("--state-dir", a.root, "list", "--output", shared, "--json"))
    owners = {Path(e["archive"]).name: e["owner"] for e in listed["archives"] if e["on_disk"]}
    assert {owners[p.name] for p in theirs} == {"foreign"}
    assert owners[mine[-1].name] == "this"
    status = json_out(run_cli("--state-dir", a.root, "status", "--output", shared, "--json"))
    assert status["archive_count"] == 1


def test_a_registry_path_with_a_nul_byte_is_a_note_not_a_crash(
    small: StateTree, out_dir: Path
) -> None:
    conn = sqlite3.connect(small.global_db)
    conn.execute("INSERT INTO agent_databases (agent_id, path) VALUES ('ghost', ?)", ("a\x00b",))
    conn.commit()
    conn.close()
    proc = run_cli("--state-dir", small.root, "backup", "--output", out_dir)
    assert proc.returncode == 0, proc.stderr
    assert "unusable path" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("status",),
        ("prune", "--keep-last", "1"),
        ("backup",),
        ("backup", "--dry-run"),
        ("schedule", "--cron"),
        ("restore", "/nonexistent.tar.zst", "--in-place"),
    ],
)
def test_every_command_on_a_missing_state_dir_exits_2_with_one_message(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "no-such-state"
    proc = run_cli("--state-dir", missing, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"backupkit: error: state dir {missing} does not exist: pass --state-dir or set "
        "OPENCLAW_STATE_DIR"
    )
    assert not missing.exists()


def test_status_prometheus_output_parses_and_says_what_status_says(
    small: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    backup_ok(small, out_dir)
    prom = tmp_path / "textfile" / "backupkit.prom"
    prom.parent.mkdir()
    proc = run_cli("--state-dir", small.root, "status", "--output", out_dir, "--prometheus", prom)
    assert proc.returncode == 0, proc.stderr
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    value = {name: f.samples[0].value for name, f in families.items()}
    assert value["backupkit_status_ok"] == 1
    assert value["backupkit_last_run_success"] == 1
    assert value["backupkit_last_verify_success"] == 1
    assert value["backupkit_archives"] == 1 and value["backupkit_archive_bytes"] > 0
    assert families["backupkit_status_ok"].samples[0].labels == {"state_dir": str(small.root)}
    assert oct(prom.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(prom.parent) == ["backupkit.prom"]


def test_status_prometheus_turns_red_with_status(
    small: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    prom = tmp_path / "backupkit.prom"
    proc = run_cli("--state-dir", small.root, "status", "--prometheus", prom)
    assert proc.returncode == 1
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert families["backupkit_status_ok"].samples[0].value == 0
    assert "backupkit_last_success_timestamp_seconds" not in families
    body = orjson.loads(run_cli("--state-dir", small.root, "status", "--json").stdout)
    assert body["ok"] is False
