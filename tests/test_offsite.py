"""Offsite copies against a real S3-protocol server on 127.0.0.1: upload, proof, create-once,
reading straight from the bucket (docs/offsite.md)."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import pytest

from backupkit.archive.format import Frame
from backupkit.errors import IntegrityError
from backupkit.offsite.upload import Expected, composite_sha256, part_size, upload_file
from backupkit.offsite.url import Remote

from .conftest import (
    Bucket,
    S3Server,
    StateTree,
    backup_ok,
    backup_to,
    json_out,
    live_rows,
    run_cli,
    table_rows,
)


def test_the_test_server_listens_on_loopback_only(s3_server: S3Server) -> None:
    addresses = s3_server.listening_addresses()
    assert addresses, "the server listens on nothing"
    assert all(a.startswith("0100007F:") for a in addresses), addresses


def test_backup_to_uploads_the_archive_byte_for_byte(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    body = backup_to(state, out_dir, bucket)
    archive = Path(body["archive"])
    assert body["remote"]["ok"] is True
    assert body["remote"]["url"] == f"{bucket.url()}/{archive.name}"
    assert bucket.object_keys() == [f"backups/{archive.name}"]
    assert bucket.read(f"backups/{archive.name}") == archive.read_bytes()


def test_the_proof_is_the_servers_own_checksum_of_the_parts_sent(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    body = backup_to(state, out_dir, bucket)
    data = Path(body["archive"]).read_bytes()
    step = part_size(len(data))
    parts = [hashlib.sha256(data[i : i + step]).digest() for i in range(0, len(data), step)]
    head = bucket.client.head_object(
        Bucket=bucket.name, Key=f"backups/{Path(body['archive']).name}", ChecksumMode="ENABLED"
    )
    assert body["remote"]["proof"] == "sha256-parts"
    assert head["ChecksumSHA256"] == composite_sha256(parts) == body["remote"]["checksum"]
    assert body["remote"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["remote"]["size_bytes"] == len(data) == head["ContentLength"]


def test_push_never_overwrites_an_object_already_under_the_key(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    archive = backup_ok(state, out_dir)
    key = f"backups/{archive.name}"
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=b"somebody else's bytes")
    proc = run_cli("--state-dir", state.root, "push", archive, "--to", bucket.url(), env=bucket.env)
    assert proc.returncode == 2
    assert "never overwrites" in proc.stderr
    assert bucket.read(key) == b"somebody else's bytes"
    assert bucket.unfinished_uploads() == []


def test_pushing_the_same_archive_again_finds_its_proven_copy(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    archive = backup_ok(state, out_dir)
    args = ("--state-dir", state.root, "push", archive, "--to", bucket.url(), "--json")
    first = json_out(run_cli(*args, env=bucket.env))
    again = run_cli(*args, env=bucket.env)
    assert again.returncode == 0, again.stderr
    assert first["already_there"] is False
    assert json_out(again)["already_there"] is True
    assert json_out(again)["checksum"] == first["checksum"]


def test_push_refuses_a_local_archive_that_no_longer_matches_its_seal(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    archive = backup_ok(state, out_dir)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    proc = run_cli("--state-dir", state.root, "push", archive, "--to", bucket.url(), env=bucket.env)
    assert proc.returncode == 1
    assert "not the one written" in proc.stderr
    assert bucket.object_keys() == []
    assert bucket.unfinished_uploads() == []


def test_verify_and_show_read_the_archive_straight_from_the_bucket(
    state: StateTree, out_dir: Path, bucket: Bucket
) -> None:
    body = backup_to(state, out_dir, bucket)
    Path(body["archive"]).unlink()  # nothing local to fall back on
    url = body["remote"]["url"]
    verified = run_cli("--state-dir", state.root, "verify", url, "--json", env=bucket.env)
    assert verified.returncode == 0, verified.stdout
    assert json_out(verified)["ok"] is True
    shown = run_cli("show", url, "--json", env=bucket.env)
    assert shown.returncode == 0, shown.stderr
    assert json_out(shown)["backup_id"] == body["backup_id"]


def test_restore_from_the_bucket_rebuilds_every_database_in_a_fresh_directory(
    state: StateTree, out_dir: Path, bucket: Bucket, tmp_path: Path
) -> None:
    body = backup_to(state, out_dir, bucket)
    Path(body["archive"]).unlink()
    target = tmp_path / "new-machine"
    proc = run_cli("restore", body["remote"]["url"], "--target", target, env=bucket.env)
    assert proc.returncode == 0, proc.stderr
    inside = [db for db in state.agent_dbs.values() if db.is_relative_to(state.root)]
    assert inside
    for db in [state.global_db, *inside]:
        restored = target / db.relative_to(state.root)
        rows = table_rows(restored)
        live = live_rows(db)
        if db == state.global_db:
            # The ledger gained this backup's own rows since, and restore rewrites the
            # registry's paths to where the databases now stand.
            for table in ("backup_runs", "agent_databases"):
                rows.pop(table)
                live.pop(table)
        assert rows == live, db


def test_an_archive_missing_from_the_bucket_is_exit_2_with_what_to_do(bucket: Bucket) -> None:
    proc = run_cli("verify", f"{bucket.url()}/openclaw-backup-x.tar.zst", env=bucket.env)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "list --remote" in proc.stderr


def test_an_upload_checks_each_frame_as_written_and_completes_nothing_on_a_mismatch(
    tmp_path: Path, bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in bucket.env.items():
        monkeypatch.setenv(name, value)
    data = bytearray(os.urandom(300_000))
    cuts = [0, 70_000, 210_000, len(data)]
    frames = tuple(
        Frame(a, b - a, hashlib.sha256(data[a:b]).digest()) for a, b in itertools.pairwise(cuts)
    )
    path = tmp_path / "openclaw-backup-20260101T000000Z-0badf00d.tar.zst"
    data[100_000] ^= 0x01  # inside the second frame, after it was "written"
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="not the one written"):
        upload_file(path, Remote.parse(bucket.url()), expect=Expected(frames))
    assert bucket.object_keys() == []
    assert bucket.unfinished_uploads() == []
