"""`schedule --install` and `--uninstall`: systemd units written atomically into a unit
directory, or a marked entry in the user's crontab; only what backupkit wrote is ever replaced or
removed. The machine's own systemd and crontab are never touched: units go to a temporary
--unit-dir, and the crontab program is a small script of the test's that keeps the crontab in a
file, as `crontab -l` and `crontab -` do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures import StateTree, build_state

from .conftest import json_out, run_cli

UNITS = ("backupkit-backup.service", "backupkit-backup.timer", "backupkit-alert@.service")
FAKE_CRONTAB = """#!/bin/sh
# crontab(1) as far as backupkit uses it: -l prints the crontab, - replaces it from stdin.
case "$1" in
  -l) if [ -f "$CRONTAB_FILE" ]; then cat "$CRONTAB_FILE"; else
        echo "no crontab for $(id -un)" >&2; exit 1; fi ;;
  -) cat > "$CRONTAB_FILE" ;;
  *) echo "usage: crontab -l | crontab -" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def small(tmp_path: Path) -> StateTree:
    return build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=4096, with_socket=False)


@pytest.fixture
def crontab(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The crontab's file, and the environment that points backupkit's crontab edits at it."""
    program = tmp_path / "bin" / "crontab"
    program.parent.mkdir()
    program.write_text(FAKE_CRONTAB)
    program.chmod(0o755)
    store = tmp_path / "crontab.txt"
    return store, {"BACKUPKIT_CRONTAB": os.fspath(program), "CRONTAB_FILE": os.fspath(store)}


def _schedule(
    state: StateTree, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli("--state-dir", state.root, "schedule", *args, env=env)


def _install(state: StateTree, unit_dir: Path, *extra: str) -> None:
    proc = _schedule(state, "--systemd", "--install", "--unit-dir", unit_dir, *extra)
    assert proc.returncode == 0, proc.stderr


def _exec_start(unit: Path) -> str:
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    return line.removeprefix("ExecStart=")


def test_install_writes_the_service_its_timer_and_the_alert_template(
    small: StateTree, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    _install(small, units, "--on-calendar", "daily")
    assert sorted(p.name for p in units.iterdir()) == sorted(UNITS)
    assert {(p.stat().st_mode & 0o777) for p in units.iterdir()} == {0o644}
    assert "OnCalendar=daily" in (units / "backupkit-backup.timer").read_text()
    assert f"--state-dir {small.root}" in _exec_start(units / "backupkit-backup.service")


def test_the_service_fails_over_to_the_alert_template_installed_beside_it(
    small: StateTree, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    _install(small, units)
    service = (units / "backupkit-backup.service").read_text()
    on_failure = next(x for x in service.splitlines() if x.startswith("OnFailure="))
    template = on_failure.removeprefix("OnFailure=").replace("%n", "backupkit-backup.service")
    prefix, _, _instance = template.partition("@")
    assert (units / f"{prefix}@.service").is_file()
    # systemd-cat -t backupkit -p err /path/to/echo "...": the programs are absolute paths.
    words = _exec_start(units / "backupkit-alert@.service").split()
    assert Path(words[0]).is_absolute() and Path(words[0]).name == "systemd-cat"
    assert words[1:5] == ["-t", "backupkit", "-p", "err"]
    assert os.access(words[5], os.X_OK) and Path(words[5]).name == "echo"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_installed_units_pass_systemd_analyze_verify(small: StateTree, tmp_path: Path) -> None:
    units = tmp_path / "units"
    _install(small, units)
    instance = units / "backupkit-alert@backupkit-backup.service.service"
    shutil.copyfile(units / "backupkit-alert@.service", instance)  # how systemd loads it
    ran = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            *(os.fspath(units / n) for n in UNITS[:2]),
            os.fspath(instance),
        ],
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr


def test_a_dry_run_install_shows_each_file_and_writes_nothing(
    small: StateTree, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    proc = _schedule(small, "--systemd", "--install", "--dry-run", "--unit-dir", units)
    assert proc.returncode == 0, proc.stderr
    assert not units.exists()
    for name in UNITS:
        assert f"would write {units / name}:" in proc.stdout
    assert "  OnFailure=backupkit-alert@%n.service" in proc.stdout
    report = json_out(
        _schedule(small, "--systemd", "--install", "--dry-run", "--unit-dir", units, "--json")
    )
    assert report["dry_run"] is True and [f["path"] for f in report["files"]] == [
        os.fspath(units / n) for n in UNITS
    ]


def test_installing_twice_gives_the_same_files_and_leaves_no_temporary(
    small: StateTree, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    _install(small, units)
    first = {p.name: p.read_bytes() for p in units.iterdir()}
    _install(small, units)
    assert {p.name: p.read_bytes() for p in units.iterdir()} == first


def test_install_refuses_to_replace_a_unit_it_did_not_write(
    small: StateTree, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    units.mkdir()
    mine = units / "backupkit-backup.service"
    mine.write_text("[Service]\nExecStart=/usr/local/bin/my-own-backup\n")
    proc = _schedule(small, "--systemd", "--install", "--unit-dir", units)
    assert proc.returncode == 2
    assert "not written by backupkit" in proc.stderr
    assert mine.read_text() == "[Service]\nExecStart=/usr/local/bin/my-own-backup\n"
    assert sorted(p.name for p in units.iterdir()) == ["backupkit-backup.service"]


def test_uninstall_removes_what_install_wrote_and_nothing_else(
    small: StateTree, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    _install(small, units)
    other = units / "gateway.service"
    other.write_text("[Service]\nExecStart=/usr/bin/true\n")
    wants = units / "timers.target.wants"
    wants.mkdir()
    (wants / "backupkit-backup.timer").symlink_to(units / "backupkit-backup.timer")
    proc = _schedule(small, "--systemd", "--uninstall", "--unit-dir", units)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in units.iterdir()) == ["gateway.service", "timers.target.wants"]
    assert list(wants.iterdir()) == []
    assert "systemctl stop backupkit-backup.timer" in proc.stdout


def test_user_units_go_under_the_users_systemd_config(small: StateTree, tmp_path: Path) -> None:
    config = tmp_path / "config"
    proc = _schedule(
        small, "--systemd", "--install", "--user", env={"XDG_CONFIG_HOME": str(config)}
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (config / "systemd" / "user").iterdir()) == sorted(UNITS)
    assert "systemctl --user enable --now backupkit-backup.timer" in proc.stdout


def test_cron_install_adds_a_marked_entry_and_keeps_the_other_lines(
    small: StateTree, crontab: tuple[Path, dict[str, str]]
) -> None:
    store, env = crontab
    store.write_text("MAILTO=ops@example.org\n30 1 * * * /usr/local/bin/rotate-logs\n")
    proc = _schedule(small, "--cron", "--install", "--at", "02:45", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = store.read_text().splitlines()
    assert lines[:2] == ["MAILTO=ops@example.org", "30 1 * * * /usr/local/bin/rotate-logs"]
    assert lines[2] == f"# >>> backupkit schedule for {small.root} >>>"
    assert lines[-1] == f"# <<< backupkit schedule for {small.root} <<<"
    assert any(x.startswith("45 2 * * * ") and " backup " in x for x in lines)


def test_cron_install_twice_leaves_one_entry_with_the_new_time(
    small: StateTree, crontab: tuple[Path, dict[str, str]]
) -> None:
    store, env = crontab
    assert _schedule(small, "--cron", "--install", "--at", "02:45", env=env).returncode == 0
    assert _schedule(small, "--cron", "--install", "--at", "04:10", env=env).returncode == 0
    jobs = [x for x in store.read_text().splitlines() if not x.startswith("#")]
    assert len(jobs) == 1 and jobs[0].startswith("10 4 * * * ")


def test_cron_uninstall_removes_the_entry_and_keeps_the_other_lines(
    small: StateTree, crontab: tuple[Path, dict[str, str]]
) -> None:
    store, env = crontab
    store.write_text("30 1 * * * /usr/local/bin/rotate-logs\n")
    assert _schedule(small, "--cron", "--install", env=env).returncode == 0
    proc = _schedule(small, "--cron", "--uninstall", env=env)
    assert proc.returncode == 0, proc.stderr
    assert store.read_text() == "30 1 * * * /usr/local/bin/rotate-logs\n"


def test_cron_entries_of_two_state_dirs_are_kept_apart(
    small: StateTree, tmp_path: Path, crontab: tuple[Path, dict[str, str]]
) -> None:
    store, env = crontab
    other = build_state(tmp_path / "other", agents=1, bytes_per_agent=4096, with_socket=False)
    assert _schedule(small, "--cron", "--install", env=env).returncode == 0
    assert _schedule(other, "--cron", "--install", env=env).returncode == 0
    assert _schedule(small, "--cron", "--uninstall", env=env).returncode == 0
    text = store.read_text()
    assert f"--state-dir {other.root}" in text and f"--state-dir {small.root}" not in text


def test_a_cron_dry_run_shows_the_crontab_it_would_write_and_changes_nothing(
    small: StateTree, crontab: tuple[Path, dict[str, str]]
) -> None:
    store, env = crontab
    store.write_text("30 1 * * * /usr/local/bin/rotate-logs\n")
    proc = _schedule(small, "--cron", "--install", "--dry-run", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "your crontab would be:" in proc.stdout
    assert "  30 1 * * * /usr/local/bin/rotate-logs" in proc.stdout
    assert f"# >>> backupkit schedule for {small.root} >>>" in proc.stdout
    assert store.read_text() == "30 1 * * * /usr/local/bin/rotate-logs\n"


def test_a_missing_crontab_program_says_what_to_do(small: StateTree, tmp_path: Path) -> None:
    proc = _schedule(
        small, "--cron", "--install", env={"BACKUPKIT_CRONTAB": str(tmp_path / "no-crontab")}
    )
    assert proc.returncode == 4
    assert "not found" in proc.stderr and "--systemd" in proc.stderr
