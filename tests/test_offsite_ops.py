"""Remote copies as monitoring, retention and the ledger see them: list, status, prune with
--remote, object lock, two state dirs under one prefix, encrypted copies, secrets."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from fixtures.s3server import SECRET_KEY

from .conftest import (
    Bucket,
    S3Server,
    StateTree,
    backup_to,
    backup_to_args,
    build_state,
    json_out,
    json_text,
    make_bucket,
    remote_args,
    run_cli,
)


def _remote_rows(state: StateTree) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(state.global_db)
    try:
        return conn.execute(
            "SELECT status, archive_path, manifest_json FROM backup_runs "
            "WHERE status LIKE 'remote-%' ORDER BY created_at"
        ).fetchall()
    finally:
        conn.close()


def test_the_ledger_records_each_remote_copy_with_its_url_size_and_checksum(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    body = backup_to(state, out_dir, bucket)
    rows = _remote_rows(state)
    assert [r[0] for r in rows] == ["remote-started", "remote-ok"]
    assert rows[-1][1] == body["remote"]["url"]
    recorded = json_text(rows[-1][2])
    assert recorded["size_bytes"] == body["remote"]["size_bytes"]
    assert recorded["checksum"] == body["remote"]["checksum"]
    assert recorded["proof"] == "sha256-parts"


def test_no_secret_reaches_output_the_ledger_or_the_bucket(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    proc = run_cli("-v", *backup_to_args(state, out_dir, bucket), env=bucket.env)
    assert proc.returncode == 0, proc.stderr
    listed = run_cli("--state-dir", state.root, "list", "--remote", bucket.url(), env=bucket.env)
    assert SECRET_KEY not in proc.stdout + proc.stderr + listed.stdout + listed.stderr
    assert SECRET_KEY.encode() not in state.global_db.read_bytes()
    for key in bucket.object_keys():
        head = bucket.client.head_object(Bucket=bucket.name, Key=key)
        assert SECRET_KEY not in str(head["Metadata"])


def test_list_shows_each_archive_with_its_remote_copy_beside_it(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    body = backup_to(state, out_dir, bucket)
    proc = run_cli("--state-dir", state.root, "list", "--remote", bucket.url(), env=bucket.env)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    line = next(ln for ln in rows if body["backup_id"] in ln)
    assert "REMOTE" in re.split(r"\s{2,}", header)
    assert line[header.index("REMOTE") :].startswith("proven ")
    listed = json_out(
        run_cli(
            "--state-dir", state.root, "list", "--remote", bucket.url(), "--json", env=bucket.env
        )
    )
    assert [c["backup_id"] for c in listed["remote"]["copies"]] == [body["backup_id"]]
    assert listed["remote"]["copies"][0]["proven"] is True


def test_status_remote_is_ok_for_a_fresh_proven_copy_and_exit_1_when_stale(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    backup_to(state, out_dir, bucket)
    args = remote_args(state, out_dir, bucket, "status")
    fresh = run_cli(*args, "--json", env=bucket.env)
    assert fresh.returncode == 0, fresh.stdout
    assert json_out(fresh)["remote"]["ok"] is True
    stale = run_cli(*args, "--max-age", "0s", "--json", env=bucket.env)
    assert stale.returncode == 1
    assert "newest proven remote copy is older" in " ".join(json_out(stale)["problems"])


def test_status_remote_fails_when_the_last_upload_failed(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    backup_to(state, out_dir, bucket)
    env = {**bucket.env, "AWS_SECRET_ACCESS_KEY": "wrong"}  # ministack checks no signature:
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # so make the next upload fail outright
    failed = run_cli(
        "--state-dir", state.root, "backup", "--output", out_dir, "--to", bucket.url(), env=env
    )
    assert failed.returncode == 4
    status = run_cli(*remote_args(state, out_dir, bucket, "status"), env=bucket.env)
    assert status.returncode == 1
    assert "last upload" in status.stderr


def test_prometheus_output_carries_the_remote_figures(
    state: StateTree, out_dir: Path, bucket: Bucket, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    backup_to(state, out_dir, bucket)
    prom = tmp_path / "backupkit.prom"
    proc = run_cli(
        *remote_args(state, out_dir, bucket, "status", "--prometheus", prom), env=bucket.env
    )
    assert proc.returncode == 0, proc.stderr
    samples = {
        s.name: s
        for family in text_string_to_metric_families(prom.read_text())
        for s in family.samples
    }
    assert samples["backupkit_remote_status_ok"].value == 1
    assert samples["backupkit_remote_copies"].value == 1
    assert samples["backupkit_remote_status_ok"].labels["remote"] == bucket.url()


def test_prune_remote_keeps_the_newest_proven_copy_and_deletes_the_rest(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    ids = [backup_to(state, out_dir, bucket)["backup_id"] for _ in range(3)]
    proc = run_cli(
        *remote_args(state, out_dir, bucket, "prune", "--keep-last", "1", "--json"), env=bucket.env
    )
    assert proc.returncode == 0, proc.stderr
    assert [k.split("-backup-")[1][:25] for k in bucket.object_keys()] == [ids[-1]]


def test_prune_remote_never_touches_another_state_dirs_copies_under_the_same_prefix(
    tmp_path: Path, bucket: Bucket
) -> None:
    ours = build_state(tmp_path / "ours")
    theirs = build_state(tmp_path / "theirs")
    for _ in range(2):
        backup_to(theirs, tmp_path / "their-backups", bucket)
    mine = [backup_to(ours, tmp_path / "our-backups", bucket)["backup_id"] for _ in range(2)]
    before = set(bucket.object_keys())
    proc = run_cli(
        *remote_args(ours, tmp_path / "our-backups", bucket, "prune", "--keep-last", "1"),
        env=bucket.env,
    )
    assert proc.returncode == 0, proc.stderr
    gone = before - set(bucket.object_keys())
    assert len(gone) == 1 and mine[0] in gone.pop()
    listed = json_out(
        run_cli(
            "--state-dir", ours.root, "list", "--remote", bucket.url(), "--json", env=bucket.env
        )
    )
    owners = sorted(c["owner"] for c in listed["remote"]["copies"])
    assert owners == ["this", "unknown", "unknown"]


def test_retention_days_locks_the_copy_and_prune_leaves_it_saying_so(
    state: StateTree, out_dir: Path, s3_server: S3Server
) -> None:
    locked = make_bucket(s3_server, object_lock=True)
    first = backup_to(state, out_dir, locked, "--retention-days", "3")
    assert first["remote"]["locked_until_at"] is not None
    backup_to(state, out_dir, locked, "--retention-days", "3")
    proc = run_cli(
        *remote_args(state, out_dir, locked, "prune", "--keep-last", "1", "--json"), env=locked.env
    )
    assert proc.returncode == 0, proc.stderr
    report = json_out(proc)["remote"]
    assert [i["backup_id"] for i in report["locked"]] == [first["backup_id"]]
    assert "locked until" in report["locked"][0]["why"]
    assert len(locked.object_keys()) == 2
    key = locked.object_keys()[0]
    retention = locked.client.get_object_retention(Bucket=locked.name, Key=key)["Retention"]
    assert retention["Mode"] == "COMPLIANCE"


def test_retention_days_on_a_bucket_without_object_lock_is_refused_with_what_to_do(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    proc = run_cli(*backup_to_args(state, out_dir, bucket, "--retention-days", "3"), env=bucket.env)
    assert proc.returncode == 2
    assert "Object Lock" in proc.stderr
    assert bucket.object_keys() == [] and bucket.unfinished_uploads() == []


def test_backup_to_with_prune_thins_the_remote_only_after_the_new_copy_is_proven(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    first = backup_to(state, out_dir, bucket)
    newest = backup_to(state, out_dir, bucket, "--prune", "last=1")
    assert newest["pruned_remote"] == [first["remote"]["url"]]
    assert bucket.object_keys() == [f"backups/{Path(newest['archive']).name}"]


def test_an_encrypted_archive_goes_offsite_as_its_ciphertext(
    state: StateTree, out_dir: Path, bucket: Bucket, tmp_path: Path
) -> None:
    key = tmp_path / "key.txt"
    made = run_cli("key", "new", key)
    assert made.returncode == 0, made.stderr
    body = backup_to(state, out_dir, bucket, "--encrypt-to", made.stdout.strip())
    data = bucket.read(bucket.object_keys()[0])
    assert data.startswith(b"age-encryption.org/v1")
    assert b"manifest.json" not in data and b"SQLite format 3" not in data
    verified = run_cli(
        "--state-dir",
        state.root,
        "verify",
        body["remote"]["url"],
        "--identity",
        key,
        env=bucket.env,
    )
    assert verified.returncode == 0, verified.stderr


def test_schedule_carries_the_remote_and_its_lock_into_the_timer(state: StateTree) -> None:
    proc = run_cli(
        "--state-dir",
        state.root,
        "schedule",
        "--cron",
        "--retention-days",
        "7",
        env={"BACKUPKIT_REMOTE": "s3://gateway-backups/host-1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "--to s3://gateway-backups/host-1" in proc.stdout
    assert "--retention-days 7" in proc.stdout


def test_the_library_pushes_lists_and_prunes_remote_copies_without_printing(
    state: StateTree,
    out_dir: Path,
    bucket: Bucket,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import backupkit

    for name, value in bucket.env.items():
        monkeypatch.setenv(name, value)
    older = backupkit.create_backup(state.root, output=out_dir, to=bucket.url())
    assert older.remote is not None and older.remote_error is None
    newer = backupkit.create_backup(state.root, output=out_dir)
    pushed = backupkit.push_archive(newer.archive, bucket.url(), state_dir=state.root)
    assert pushed.copy.url == f"{bucket.url()}/{newer.archive.name}"
    listed = backupkit.list_remote(state.root, bucket.url())
    assert [e.backup_id for e in listed.own() if e.proven] == [newer.backup_id, older.backup_id]
    pruned = backupkit.prune_remote(
        state.root, bucket.url(), policy=backupkit.Policy.parse("last=1")
    )
    assert [i.backup_id for i in pruned.removed] == [older.backup_id]
    assert bucket.object_keys() == [f"backups/{newer.archive.name}"]
    assert capsys.readouterr() == ("", "")
