"""Offsite copies when the network and the server misbehave: injected errors, connections cut
mid-request and mid-reply, a server restarted mid-upload, a backup killed mid-upload. A fault
proxy (fixtures/faultproxy.py) sits between the CLI and the S3 server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from backupkit.offsite.upload import upload_file
from backupkit.offsite.url import Remote
from fixtures.faultproxy import FaultProxy

from .conftest import (
    Bucket,
    S3Server,
    StateTree,
    backup_ok,
    backup_to,
    backup_to_args,
    json_text,
    make_bucket,
    remote_args,
    run_cli,
    start_cli,
)


def _is_part(method: str, path: str) -> bool:
    return method == "PUT" and "partNumber=" in path


def _is_object_read(method: str, path: str) -> bool:
    return method == "GET" and "?" not in path


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_server.port)
    yield p
    p.close()


@pytest.fixture
def flaky(s3_server: S3Server, proxy: FaultProxy) -> Bucket:
    """A bucket reached through the fault proxy (arranged and checked directly)."""
    return make_bucket(s3_server, endpoint=proxy.endpoint)


def test_error_replies_to_parts_are_retried_and_the_copy_is_proven(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy
) -> None:
    proxy.fail(_is_part, 2, status=500)
    body = backup_to(state, out_dir, flaky)
    assert proxy.injected == 2
    assert flaky.read(body["remote"]["url"]) == Path(body["archive"]).read_bytes()


def test_a_connection_cut_in_the_middle_of_a_part_is_retried(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy
) -> None:
    proxy.cut_request(_is_part, 1, after_bytes=2000)
    body = backup_to(state, out_dir, flaky)
    assert proxy.injected == 1
    assert flaky.read(body["remote"]["url"]) == Path(body["archive"]).read_bytes()
    assert flaky.unfinished_uploads() == []


def test_a_file_of_many_parts_is_proven_part_by_part(
    tmp_path: Path, flaky: Bucket, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in flaky.env.items():
        monkeypatch.setenv(name, value)
    data = os.urandom(19 * 1024 * 1024 + 17)
    path = tmp_path / "openclaw-backup-20260101T000000Z-0badcafe.tar.zst"
    path.write_bytes(data)
    proxy.fail(_is_part, 1)
    copy = upload_file(path, Remote.parse(flaky.url()))
    assert copy.checksum is not None and copy.checksum.endswith("-3")
    assert copy.sha256 == hashlib.sha256(data).hexdigest()
    assert flaky.read(copy.url) == data


def test_a_server_restarted_mid_upload_still_ends_with_one_proven_copy(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy, s3_server: S3Server
) -> None:
    arrived = proxy.hold(_is_part)
    proc = start_cli(*backup_to_args(state, out_dir, flaky, "--json"), env=flaky.env)
    try:
        assert arrived.wait(60), "the upload never started"
        s3_server.stop()
        s3_server.start()
        proxy.release()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    body = json_text(out)
    assert flaky.read(body["remote"]["url"]) == Path(body["archive"]).read_bytes()
    assert flaky.unfinished_uploads() == []


def test_a_backup_killed_mid_upload_leaves_no_object_and_the_next_run_aborts_its_upload(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy
) -> None:
    arrived = proxy.hold(_is_part)
    proc = start_cli(*backup_to_args(state, out_dir, flaky), env=flaky.env)
    try:
        assert arrived.wait(60), "the upload never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proxy.release()
    killed = sorted(os.listdir(out_dir))
    assert len(killed) == 1  # the local archive was published before the upload began
    assert flaky.object_keys() == []
    assert flaky.unfinished_uploads() == [f"backups/{killed[0]}"]

    body = backup_to(state, out_dir, flaky)
    assert flaky.unfinished_uploads() == []
    assert flaky.object_keys() == [f"backups/{Path(body['archive']).name}"]
    assert any("aborted 1 unfinished upload" in w for w in body["warnings"])


def test_a_download_cut_twice_resumes_where_it_broke(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy
) -> None:
    archive = backup_ok(state, out_dir)
    url = f"{flaky.url()}/{archive.name}"
    pushed = run_cli("--state-dir", state.root, "push", archive, "--to", flaky.url(), env=flaky.env)
    assert pushed.returncode == 0, pushed.stderr
    proxy.cut_reply(_is_object_read, 2, after_bytes=3000)
    proc = run_cli("--state-dir", state.root, "verify", url, "--json", env=flaky.env)
    assert proc.returncode == 0, proc.stdout
    assert proxy.injected == 2


def test_a_connection_that_keeps_breaking_is_exit_4_and_restore_places_nothing(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    archive = backup_ok(state, out_dir)
    pushed = run_cli("--state-dir", state.root, "push", archive, "--to", flaky.url(), env=flaky.env)
    assert pushed.returncode == 0, pushed.stderr
    # The first reads (the archive's first bytes, its seal) go through; the stream of its
    # contents breaks after 20 kB, and every attempt to resume it breaks at once.
    proxy.cut_reply(_is_object_read, 1, after_bytes=20_000, skip=3)
    proxy.cut_reply(_is_object_read, 1000, after_bytes=0, skip=3)
    target = tmp_path / "restored"
    env = {**flaky.env, "AWS_MAX_ATTEMPTS": "1"}
    proc = run_cli("restore", f"{flaky.url()}/{archive.name}", "--target", target, env=env)
    assert proc.returncode == 4, proc.stderr
    assert re.search(r"object store broke \d+ times .*at byte [1-9]", proc.stderr)
    assert not target.exists() or os.listdir(target) == []


def _is_head(method: str, path: str) -> bool:
    return method == "HEAD"


def test_a_server_that_keeps_no_checksum_gets_the_copy_read_back_whole(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy
) -> None:
    proxy.rewrite_reply(_is_head, 1000, drop_header="x-amz-checksum-sha256")
    body = backup_to(state, out_dir, flaky)
    assert body["remote"]["proof"] == "read-back"
    assert body["remote"]["checksum"] is None
    assert flaky.read(body["remote"]["url"]) == Path(body["archive"]).read_bytes()


def test_a_read_back_that_returns_other_bytes_proves_no_copy(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy
) -> None:
    proxy.rewrite_reply(_is_head, 1000, drop_header="x-amz-checksum-sha256")
    proxy.rewrite_reply(_is_object_read, 1, flip_at=1000)
    proc = run_cli(*backup_to_args(state, out_dir, flaky, "--json"), env=flaky.env)
    assert proc.returncode == 1
    assert "not the bytes sent" in json_text(proc.stdout)["remote"]["error"]
    status = run_cli(*remote_args(state, out_dir, flaky, "status"), env=flaky.env)
    assert status.returncode == 1


def _is_complete(method: str, path: str) -> bool:
    return method == "POST" and "uploadId=" in path


def test_an_object_that_appears_during_the_upload_is_never_overwritten(
    state: StateTree, out_dir: Path, flaky: Bucket, proxy: FaultProxy
) -> None:
    arrived = proxy.hold(_is_complete)
    proc = start_cli(*backup_to_args(state, out_dir, flaky), env=flaky.env)
    try:
        assert arrived.wait(60), "the upload never reached its completion"
        (archive,) = os.listdir(out_dir)
        flaky.client.put_object(
            Bucket=flaky.name, Key=f"backups/{archive}", Body=b"another writer's bytes"
        )
    finally:
        proxy.release()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "never overwrites" in err
    assert flaky.read(f"backups/{archive}") == b"another writer's bytes"
    assert flaky.unfinished_uploads() == []
