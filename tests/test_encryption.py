"""Encryption at rest (age): round trips through backupkit and stock tools, keys, failures,
no plaintext left behind, and list/status/prune without any key."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import backupkit
from backupkit.archive.crypt import AGE_MAGIC, load_identities
from backupkit.backup.readback import read_back_defects
from backupkit.verify.scan import VERIFY_PREFIX
from fixtures import StateTree, build_state
from tests.conftest import (
    REPO,
    can_mount_tmpfs,
    json_out,
    live_rows,
    run_cli,
    table_rows,
    tree_snapshot,
)

MARKER = b"PLAINTEXT-MARKER-7f3a9c1e5b2d"
SQLITE_HEADER = b"SQLite format 3\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NEEDS_AGE = pytest.mark.skipif(
    shutil.which("age") is None, reason="stock age is not installed (scripts/_env.sh installs it)"
)


def _key(tmp_path: Path, name: str = "key.txt") -> tuple[Path, str]:
    path = tmp_path / "keys" / name
    path.parent.mkdir(exist_ok=True)
    proc = run_cli("key", "new", path)
    assert proc.returncode == 0, proc.stderr
    return path, proc.stdout.strip()


def _plant_marker(state: StateTree) -> None:
    """Marker bytes in a credential file and in a committed database row: any of them in a
    file, an output or the ledger is plaintext that got out."""
    cred = state.credential_files[0].parent / "planted-token.json"
    cred.write_bytes(b'{"token": "' + MARKER + b'"}\n')
    os.chmod(cred, 0o600)
    conn = sqlite3.connect(state.agent_dbs["main"])
    conn.execute("CREATE TABLE IF NOT EXISTS planted (v BLOB)")
    conn.execute("INSERT INTO planted VALUES (?)", (MARKER * 64,))
    conn.commit()
    conn.close()


def _backup(state: StateTree, out: Path, *extra: str | os.PathLike[str]) -> Path:
    proc = run_cli("--state-dir", state.root, "backup", "--output", out, "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    body = json_out(proc)
    assert body["encrypted"] is True
    return Path(body["archive"])


def _ledger(state: StateTree) -> list[tuple]:
    conn = sqlite3.connect(f"file:{state.global_db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM backup_runs ORDER BY id").fetchall()
    finally:
        conn.close()


def test_round_trip_through_backupkit(state: StateTree, out_dir: Path, tmp_path: Path) -> None:
    _plant_marker(state)
    key, recipient = _key(tmp_path)
    archive = _backup(state, out_dir, "--encrypt-to", recipient)
    assert archive.name.endswith(".tar.zst.age")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    data = archive.read_bytes()
    assert data.startswith(AGE_MAGIC)
    assert MARKER not in data and SQLITE_HEADER not in data and b"manifest.json" not in data
    assert sorted(os.listdir(out_dir)) == [archive.name]

    proc = run_cli("verify", archive, "--identity", key, "--json")
    assert proc.returncode == 0, proc.stdout
    assert json_out(proc)["encrypted"] is True
    target = tmp_path / "restored"
    proc = run_cli("restore", archive, "--target", target, "--identity", key)
    assert proc.returncode == 0, proc.stderr
    planted = target / state.credential_files[0].parent.relative_to(state.root)
    assert (planted / "planted-token.json").read_bytes().count(MARKER) == 1
    main = state.agent_dbs["main"]
    assert table_rows(target / main.relative_to(state.root)) == live_rows(main)

    manifest = json_out(run_cli("show", archive, "--identity", key, "--json"))
    assert manifest["encryption"]["recipients"] == 1
    assert len(manifest["encryption"]["recipient_fingerprints"]) == 1


@NEEDS_AGE
def test_stock_age_zstd_and_tar_restore_it(state: StateTree, out_dir: Path, tmp_path: Path) -> None:
    key, recipient = _key(tmp_path)
    archive = _backup(state, out_dir, "--encrypt-to", recipient)
    dest = tmp_path / "stock"
    dest.mkdir()
    subprocess.run(
        f'age -d -i "{key}" "{archive}" | zstd -dc | tar -x -C "{dest}"',
        shell=True,
        check=True,
        capture_output=True,
    )
    for cred in state.credential_files:
        assert (dest / "state" / cred.relative_to(state.root)).read_bytes() == cred.read_bytes()
    main = state.agent_dbs["main"]
    restored = dest / "state" / main.relative_to(state.root)
    conn = sqlite3.connect(restored)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    assert table_rows(restored) == live_rows(main)
    assert (dest / "manifest.json").is_file()


def test_several_recipients_each_alone_decrypts(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    keys = [_key(tmp_path, f"k{i}.txt") for i in range(3)]
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(
        "# the operators' keys\n\n" + "".join(f"{r}  \n" for _k, r in keys[1:]), encoding="utf-8"
    )
    archive = _backup(state, out_dir, "--encrypt-to", keys[0][1], "--recipients-file", recipients)
    for key, _recipient in keys:
        proc = run_cli("verify", archive, "--identity", key, "--no-record")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json_out(run_cli("show", archive, "--identity", keys[2][0], "--json"))
    assert manifest["encryption"]["recipients"] == 3


def test_an_ssh_ed25519_recipient(state: StateTree, out_dir: Path, tmp_path: Path) -> None:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is not installed (scripts/_env.sh installs openssh-client)")
    ssh_key = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops@example", "-f", ssh_key],
        check=True,
    )
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(
        "# an SSH public key, comment and all\n" + Path(f"{ssh_key}.pub").read_text(),
        encoding="utf-8",
    )
    archive = _backup(state, out_dir, "--recipients-file", recipients)
    proc = run_cli("verify", archive, "--identity", ssh_key, "--no-record")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if shutil.which("age"):
        listing = subprocess.run(
            f'age -d -i "{ssh_key}" "{archive}" | zstd -dc | tar -t',
            shell=True,
            check=True,
            capture_output=True,
            text=True,
        )
        assert "manifest.json" in listing.stdout.split()


def test_environment_variables_name_the_recipients_and_the_identity(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    key, recipient = _key(tmp_path)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(recipient + "\n", encoding="utf-8")
    proc = run_cli(
        "--state-dir",
        state.root,
        "backup",
        "--output",
        out_dir,
        env={"BACKUPKIT_RECIPIENTS_FILE": os.fspath(recipients)},
    )
    assert proc.returncode == 0, proc.stderr
    archive = Path(proc.stdout.strip())
    assert archive.name.endswith(".tar.zst.age")
    proc = run_cli("verify", archive, env={"BACKUPKIT_IDENTITY_FILE": os.fspath(key)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_missing_identity_is_exit_2_naming_the_option_and_writes_nothing(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    _key_path, recipient = _key(tmp_path)
    archive = _backup(state, out_dir, "--encrypt-to", recipient)
    rows = _ledger(state)
    target = tmp_path / "restored"
    for args in (
        ("verify", archive),
        ("show", archive),
        ("restore", archive, "--target", target),
        ("--state-dir", state.root, "restore", archive, "--in-place", "--force"),
    ):
        proc = run_cli(*args, "--json")
        assert proc.returncode == 2, (args, proc.stderr)
        assert "--identity" in proc.stderr and "BACKUPKIT_IDENTITY_FILE" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        body = json_out(proc)
        assert body["ok"] is False and body["exit_code"] == 2
    assert not target.exists()
    assert _ledger(state) == rows


def test_a_wrong_key_is_exit_2_no_identity_matches(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    _right, recipient = _key(tmp_path, "right.txt")
    wrong, _other = _key(tmp_path, "wrong.txt")
    archive = _backup(state, out_dir, "--encrypt-to", recipient)
    rows = _ledger(state)
    target = tmp_path / "restored"
    for args in (
        ("verify", archive),
        ("show", archive),
        ("restore", archive, "--target", target),
    ):
        proc = run_cli(*args, "--identity", wrong)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "no identity matches" in proc.stderr
    assert not target.exists()
    assert _ledger(state) == rows


def _flip(path: Path, offset: int) -> Path:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    bad = path.with_name("tampered-" + path.name)
    bad.write_bytes(bytes(data))
    return bad


def test_tampered_ciphertext_is_an_integrity_failure_and_restores_nothing(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    key, recipient = _key(tmp_path)
    archive = _backup(state, out_dir, "--encrypt-to", recipient)
    size = archive.stat().st_size
    for offset in (size // 2, size - 20):
        bad = _flip(archive, offset)
        proc = run_cli("verify", bad, "--identity", key, "--no-record", "--json")
        assert proc.returncode == 1, proc.stdout
        assert "tampered" in json_out(proc)["defects"][0]
        target = tmp_path / f"restored-{offset}"
        proc = run_cli("restore", bad, "--target", target, "--identity", key)
        assert proc.returncode == 1, proc.stderr
        assert not target.exists()
        bad.unlink()
    cut = tmp_path / "cut.tar.zst.age"
    cut.write_bytes(archive.read_bytes()[: size - 100])
    proc = run_cli("verify", cut, "--identity", key, "--no-record")
    assert proc.returncode == 1, proc.stdout


def test_the_read_back_proves_the_ciphertext_on_disk(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    _key_path, recipient = _key(tmp_path)
    result = backupkit.create_backup(state.root, output=out_dir, encrypt_to=[recipient])
    assert result.ok and result.verified and result.written is not None
    assert read_back_defects(result.archive, result.written) == []
    original = result.archive.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x01
    result.archive.write_bytes(bytes(damaged))
    assert any("sha256" in d for d in read_back_defects(result.archive, result.written))
    damaged = bytearray(original)
    damaged[original.index(b"\n---") + 1] = ord("x")  # the header's MAC line
    result.archive.write_bytes(bytes(damaged))
    assert any("age header" in d for d in read_back_defects(result.archive, result.written))


def test_no_identity_or_plaintext_in_outputs_ledger_or_manifest(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    _plant_marker(state)
    key, recipient = _key(tmp_path)
    secret = next(
        line for line in key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-1")
    )
    base = ("--state-dir", state.root)
    outputs: list[str] = []
    for args in (
        (*base, "-v", "backup", "--output", out_dir, "--encrypt-to", recipient),
        (*base, "-v", "backup", "--output", out_dir, "--encrypt-to", recipient, "--json"),
    ):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
        outputs += [proc.stdout, proc.stderr]
    archive = sorted(out_dir.iterdir())[-1]
    target = tmp_path / "restored"
    wrong, _r = _key(tmp_path, "wrong.txt")
    for args in (
        (*base, "list", "--output", out_dir),
        (*base, "list", "--output", out_dir, "--json"),
        (*base, "status", "--output", out_dir, "--json"),
        (*base, "status", "--output", out_dir),
        ("-v", "show", archive, "--identity", key),
        ("show", archive, "--identity", key, "--json"),
        ("-v", "verify", archive, "--identity", key, "--json"),
        ("-v", "verify", archive, "--identity", wrong),
        ("-v", "verify", archive),
        ("-v", "restore", archive, "--target", target, "--identity", key, "--json"),
        ("backup", "--encrypt-to", secret),  # a secret key given as a recipient
        ("key", "new", key),
    ):
        proc = run_cli(*args)
        outputs += [proc.stdout, proc.stderr]
    ledger = repr(_ledger(state))
    manifest = json_out(run_cli("show", archive, "--identity", key, "--json"))
    texts = [*outputs, ledger, repr(manifest)]
    for text in texts:
        assert "AGE-SECRET-KEY-" not in text.upper()
        assert MARKER.decode() not in text
    assert secret[20:40] not in "".join(texts)


def test_list_status_and_prune_need_no_key(state: StateTree, out_dir: Path, tmp_path: Path) -> None:
    _key_path, recipient = _key(tmp_path)
    archives = [_backup(state, out_dir, "--encrypt-to", recipient) for _ in range(3)]
    # Another state dir's encrypted archive in the same directory: its owner cannot be read.
    other = build_state(tmp_path / "other", agents=1, bytes_per_agent=0, with_socket=False)
    foreign = _backup(other, tmp_path / "other-out", "--encrypt-to", recipient)
    shutil.copy(foreign, out_dir / foreign.name)
    base = ("--state-dir", state.root)
    listed = json_out(run_cli(*base, "list", "--output", out_dir, "--json"))
    by_name = {Path(e["archive"]).name: e for e in listed["archives"]}
    assert all(
        by_name[a.name]["encrypted"] and by_name[a.name]["owner"] == "this" for a in archives
    )
    assert by_name[foreign.name]["owner"] == "unknown"
    status = run_cli(*base, "status", "--output", out_dir, "--json")
    assert status.returncode == 0, status.stdout
    assert json_out(status)["ok"] is True
    proc = run_cli(*base, "prune", "--output", out_dir, "--keep-last", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(out_dir)) == sorted([archives[-1].name, foreign.name])


def test_in_place_restore_of_an_encrypted_archive_needs_recipients_for_its_snapshot(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    key, recipient = _key(tmp_path)
    archive = _backup(state, out_dir, "--encrypt-to", recipient)
    before = tree_snapshot(state.root)
    base = ("--state-dir", state.root, "restore", archive, "--in-place", "--output", out_dir)
    proc = run_cli(*base, "--identity", key, "--force")
    assert proc.returncode == 2, proc.stderr
    assert "--encrypt-to" in proc.stderr and "--recipients-file" in proc.stderr
    assert tree_snapshot(state.root) == before
    assert sorted(os.listdir(out_dir)) == [archive.name]
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(recipient + "\n", encoding="utf-8")
    proc = run_cli(*base, "--identity", key, "--force", "--recipients-file", recipients, "--json")
    assert proc.returncode == 0, proc.stderr
    snapshot = Path(json_out(proc)["safety_archive"])
    assert snapshot.name.endswith(".tar.zst.age")
    assert snapshot.read_bytes().startswith(AGE_MAGIC)
    assert run_cli("verify", snapshot, "--identity", key, "--no-record").returncode == 0


def test_a_pre_migration_snapshot_follows_the_configured_recipients(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    key, recipient = _key(tmp_path)
    snap = backupkit.safety_snapshot(state.root, output=out_dir, encrypt_to=[recipient])
    assert snap.archive.name.endswith(".tar.zst.age")
    assert "--identity" in snap.rollback_command
    report = backupkit.verify_archive(snap.archive, identity=key, record=False)
    assert report.ok, report.defects


def test_key_new_writes_0600_refuses_to_overwrite_and_prints_the_recipient(
    tmp_path: Path,
) -> None:
    path = tmp_path / "identity.txt"
    proc = run_cli("key", "new", path, "--json")
    assert proc.returncode == 0, proc.stderr
    body = json_out(proc)
    assert body["recipient"].startswith("age1") and "AGE-SECRET" not in proc.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    assert len(load_identities(path)) == 1
    again = run_cli("key", "new", path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert path.read_bytes() == before
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    assert run_cli("key", "new", link).returncode == 2
    assert not (tmp_path / "nowhere").exists()
    made = backupkit.new_identity(tmp_path / "lib.txt")
    assert made.recipient.startswith("age1") and made.path.stat().st_mode & 0o077 == 0
    assert sorted(os.listdir(tmp_path)) == ["dangling", "identity.txt", "lib.txt"]


def test_bad_recipients_are_refused_before_anything_is_written(
    state: StateTree, out_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody yet\n", encoding="utf-8")
    for extra in (
        ("--encrypt-to", "age1notakey"),
        ("--encrypt-to", "ssh-dss AAAAB3NzaC1kc3M="),
        ("--recipients-file", empty),
        ("--recipients-file", tmp_path / "missing.txt"),
    ):
        proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir, *extra)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert not out_dir.exists()


def test_schedule_carries_the_recipients(state: StateTree, tmp_path: Path) -> None:
    _key_path, recipient = _key(tmp_path)
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(recipient + "\n", encoding="utf-8")
    proc = run_cli("--state-dir", state.root, "schedule", "--cron", "--encrypt-to", recipient)
    assert proc.returncode == 0, proc.stderr
    assert f"--encrypt-to {recipient}" in proc.stdout
    proc = run_cli(
        "--state-dir",
        state.root,
        "schedule",
        "--systemd",
        env={"BACKUPKIT_RECIPIENTS_FILE": os.fspath(recipients)},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"BACKUPKIT_RECIPIENTS_FILE={recipients}" in proc.stdout
    bad = run_cli("--state-dir", state.root, "schedule", "--cron", "--encrypt-to", "nope")
    assert bad.returncode == 2


def test_show_stops_the_decrypting_thread(state: StateTree, out_dir: Path, tmp_path: Path) -> None:
    key, recipient = _key(tmp_path)
    archive = _backup(state, out_dir, "--encrypt-to", recipient)
    before = threading.active_count()
    for _ in range(3):
        assert backupkit.read_manifest(archive, identity=key).encryption is not None
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


# --- kill trials -----------------------------------------------------------------------------


def _plaintext_files(root: Path) -> list[str]:
    """Files under root that hold plaintext: the marker, a database, or an unencrypted archive."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if MARKER in data or data.startswith((SQLITE_HEADER, ZSTD_MAGIC)):
                found.append(os.fspath(path))
    return found


def test_killed_encrypted_backups_leave_no_plaintext_after_the_next_run(tmp_path: Path) -> None:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=2 << 20, with_socket=False)
    _plant_marker(state)
    key, recipient = _key(tmp_path)
    out = tmp_path / "backups"
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCLAW_", "BACKUPKIT_"))}
    env.update(PYTHONPATH=os.fspath(REPO), TMPDIR=os.fspath(scratch))
    backup = [sys.executable, "-m", "backupkit", "--state-dir", os.fspath(state.root), "backup"]
    backup += ["--output", os.fspath(out), "--encrypt-to", recipient]
    verify = [sys.executable, "-m", "backupkit", "verify", "--identity", os.fspath(key)]
    started = time.monotonic()
    subprocess.run(backup, env=env, capture_output=True, check=True)
    full = time.monotonic() - started
    rng = random.Random(16)
    saw_staging = 0
    for i in range(8):
        cmd = backup if i % 2 == 0 else [*verify, os.fspath(sorted(out.glob("*.age"))[0])]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        saw_staging += any(n.startswith(".backupkit-staging-") for n in os.listdir(out))
        for name in os.listdir(out):  # anything under a final name is a whole encrypted archive
            if not name.startswith("."):
                assert name.endswith(".tar.zst.age"), name
                check = subprocess.run(
                    [*verify, os.fspath(out / name), "--no-record"], env=env, capture_output=True
                )
                assert check.returncode == 0, (name, check.stdout)
    after = subprocess.run(backup, env=env, capture_output=True, text=True)
    assert after.returncode == 0, after.stderr
    again = subprocess.run(
        [*verify, os.fspath(sorted(out.glob("*.age"))[-1])], env=env, capture_output=True
    )
    assert again.returncode == 0
    assert all(n.endswith(".tar.zst.age") for n in os.listdir(out)), os.listdir(out)
    assert _plaintext_files(out) == []
    assert _plaintext_files(scratch) == []
    assert not [n for n in os.listdir(scratch) if n.startswith(VERIFY_PREFIX)]
    print(f"encrypted kill trials: 8, killed while staging: {saw_staging}")


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root and tmpfs mounts")
def test_disk_full_while_writing_ciphertext_exits_4_leaving_nothing(tmp_path: Path) -> None:
    state = build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=0, with_socket=False)
    (state.root / "workspace" / "noise.bin").write_bytes(random.Random(4).randbytes(4 << 20))
    _key_path, recipient = _key(tmp_path)
    out = tmp_path / "small"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", os.fspath(out)], check=True)
    try:
        proc = run_cli(
            "--state-dir", state.root, "backup", "--output", out, "--encrypt-to", recipient
        )
        assert proc.returncode == 4, proc.stderr
        assert "disk full" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert os.listdir(out) == []
    finally:
        subprocess.run(["umount", os.fspath(out)], check=True)
