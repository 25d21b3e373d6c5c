"""Every error line says what went wrong and what to do, with the command's own --help hint
where the mistake is in the options; contradictory or invalid options are refused (exit 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import backupkit
from backupkit.ops.schedule import calendar_grammar_ok, timespan_grammar_ok
from fixtures import StateTree, build_state

from .conftest import (
    ERROR_LINE,
    NOBODY,
    can_mount_tmpfs,
    can_run_as_nobody,
    only_archives,
    run_cli,
    run_cli_as_nobody,
)


@pytest.fixture
def small(tmp_path: Path) -> StateTree:
    return build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=4096, with_socket=False)


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]), proc.stderr
    return lines[0]


def test_a_missing_archive_says_how_to_name_one(tmp_path: Path) -> None:
    proc = run_cli("verify", tmp_path / "openclaw-backup-nope.tar.zst")
    assert proc.returncode == 2
    line = _error(proc)
    assert "does not exist" in line and "see `backupkit list`" in line


def test_a_directory_given_as_an_archive_says_to_name_a_file_in_it(tmp_path: Path) -> None:
    proc = run_cli("show", tmp_path)
    assert proc.returncode == 2
    line = _error(proc)
    assert "is a directory, not an archive" in line
    assert f"see `backupkit list --output {tmp_path}`" in line


def test_restoring_into_a_file_says_it_is_not_a_directory(small: StateTree, tmp_path: Path) -> None:
    archive = backupkit.create_backup(small.root, output=tmp_path / "out").archive
    readme = tmp_path / "README.md"
    readme.write_text("notes\n")
    proc = run_cli("restore", archive, "--target", readme)
    assert proc.returncode == 2
    line = _error(proc)
    assert "is a file, not a directory" in line and "is not empty" not in line


@pytest.mark.skipif(not can_mount_tmpfs(), reason="needs root and tmpfs mounts")
def test_a_read_only_output_says_it_is_read_only(small: StateTree, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", out], check=True)
    try:
        proc = run_cli("--state-dir", small.root, "backup", "--output", out)
    finally:
        subprocess.run(["umount", out], check=True)
    assert proc.returncode == 4
    line = _error(proc)
    assert "read-only file system" in line and "choose another --output" in line
    assert "owner" not in line.split("choose another --output")[0]


@pytest.mark.skipif(
    not can_run_as_nobody(), reason="needs root, setpriv and a checkout nobody can read"
)
def test_an_output_this_user_cannot_write_says_it_is_not_writable() -> None:
    base = Path(tempfile.mkdtemp(prefix="backupkit-perm-"))
    try:
        os.chmod(base, 0o755)
        tree = build_state(base / "openclaw", agents=1, bytes_per_agent=4096, with_socket=False)
        for root, dirs, files in os.walk(tree.root):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), NOBODY, NOBODY)
        os.lchown(tree.root, NOBODY, NOBODY)
        out = base / "backups"
        out.mkdir(mode=0o755)  # root's: nobody may look, not write
        proc = run_cli_as_nobody("--state-dir", tree.root, "backup", "--output", out)
        assert proc.returncode == 4, proc.stderr
        line = _error(proc)
        assert f"output directory {out} is not writable by this user (nobody)" in line
        assert "choose another --output" in line
        assert only_archives(out) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("backup", "--bogus"), "backupkit backup"),
        (("key", "new"), "backupkit key new"),
        (("restore", "some-archive"), "backupkit restore"),
        (("prune", "--keep-daily", "-1"), "backupkit prune"),
        (("status", "--max-age", "soon"), "backupkit status"),
        (("schedule",), "backupkit schedule"),
    ],
)
def test_a_usage_error_points_at_the_commands_own_help(
    small: StateTree, args: tuple[str, ...], command: str
) -> None:
    proc = run_cli("--state-dir", small.root, *args)
    assert proc.returncode == 2
    assert _error(proc).endswith(f"(see {command} --help)")


@pytest.mark.parametrize(
    "args",
    [
        ("--systemd", "--cron"),
        ("--systemd", "--install", "--uninstall"),
        ("--systemd", "--dry-run"),
        ("--cron", "--on-calendar", "daily"),
        ("--cron", "--unit-dir", "/tmp/units"),
        ("--systemd", "--at", "03:00"),
    ],
)
def test_contradictory_schedule_options_are_refused(
    small: StateTree, args: tuple[str, ...]
) -> None:
    proc = run_cli("--state-dir", small.root, "schedule", *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "(see backupkit schedule --help)" in _error(proc)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--on-calendar", "garbage"), ("--on-calendar", "*-*-* 25:00"), ("--randomized-delay", "x")],
)
def test_a_timer_value_systemd_cannot_parse_is_refused(
    small: StateTree, tmp_path: Path, option: str, value: str
) -> None:
    units = tmp_path / "units"
    proc = run_cli(
        "--state-dir", small.root, "schedule", "--systemd", "--install", "--unit-dir", units,
        option, value,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"{option} {value!r}" in _error(proc)
    assert not units.exists()


CALENDARS_SYSTEMD_TAKES = [
    "daily",
    "weekly",
    "*-*-* 03:00:00",
    "Mon..Fri *-*-* 02:30",
    "Sat,Sun 04:00",
    "*-*-01 00:00:00",
    "*:0/15",
    "2026-12-24 18:00 UTC",
]
CALENDARS_SYSTEMD_REFUSES = ["garbage", "3am", "every day", "", "*-*-* 03:00 nowhere at all"]


@pytest.mark.parametrize("expression", CALENDARS_SYSTEMD_TAKES)
def test_the_fallback_calendar_check_takes_common_systemd_calendars(expression: str) -> None:
    assert calendar_grammar_ok(expression)
    if shutil.which("systemd-analyze"):
        assert (
            subprocess.run(
                ["systemd-analyze", "calendar", expression], capture_output=True
            ).returncode
            == 0
        ), "the list itself must be what systemd takes"


@pytest.mark.parametrize("expression", CALENDARS_SYSTEMD_REFUSES)
def test_the_fallback_calendar_check_refuses_what_systemd_refuses(expression: str) -> None:
    assert not calendar_grammar_ok(expression)
    if shutil.which("systemd-analyze"):
        assert (
            subprocess.run(
                ["systemd-analyze", "calendar", expression], capture_output=True
            ).returncode
            != 0
        ), "the list itself must be what systemd refuses"


@pytest.mark.parametrize(
    ("span", "ok"), [("30min", True), ("1h 30m", True), ("90", True), ("soon", False)]
)
def test_the_fallback_timespan_check_follows_systemd(span: str, ok: bool) -> None:
    assert timespan_grammar_ok(span) is ok
