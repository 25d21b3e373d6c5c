"""Installing and removing a schedule: systemd unit files written atomically into a unit
directory, or a marked block in the user's crontab, edited through the `crontab` program.

Only what backupkit wrote is ever replaced or removed: unit files carry INSTALLED_MARK on their
first line, and crontab lines stand between markers that name the state dir, so the crontab's
other lines (and another state dir's block) stay as they were. Installing twice gives the same
result as once. Nothing here starts or stops a unit: the report says which `systemctl` commands
to run, so installing never changes what runs on the machine behind the operator's back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import EnvironmentFault, InputError, from_os_error
from ..fsutil import atomic_write, fsync_dir
from .schedule import ALERT, INSTALLED_MARK, SERVICE, TIMER, UnitFile

CRONTAB_ENV = "BACKUPKIT_CRONTAB"  # the crontab program to use (default: `crontab` on PATH)
Scope = Literal["user", "system"]


@dataclass
class ScheduleReport:
    kind: Literal["systemd", "cron"]
    action: Literal["install", "uninstall"]
    dry_run: bool
    files: list[tuple[Path, str]] = field(default_factory=list)  # written (or to be)
    removed: list[Path] = field(default_factory=list)
    crontab: str | None = None  # the whole crontab after the change
    entry: str | None = None  # backupkit's block in it
    warnings: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": True,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "installed" if self.action == "install" else "uninstalled": True,
            "warnings": self.warnings,
            "next_steps": self.next_steps,
        }
        if self.kind == "systemd":
            body["files"] = [
                {"name": p.name, "path": os.fspath(p), "content": t} for p, t in self.files
            ]
            body["removed"] = [os.fspath(p) for p in self.removed]
        else:
            body["crontab_entry"] = self.entry
        return body


def default_unit_dir(scope: Scope) -> Path:
    if scope == "system":
        return Path("/etc/systemd/system")
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(config) / "systemd" / "user"


def _systemctl(scope: Scope) -> str:
    return "systemctl --user" if scope == "user" else "systemctl"


def _ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().rstrip("\n") == INSTALLED_MARK
    except FileNotFoundError:
        return False
    except OSError as err:
        raise from_os_error(err, f"reading {path}") from err


def install_units(
    files: list[UnitFile], unit_dir: Path, *, scope: Scope, dry_run: bool = False
) -> ScheduleReport:
    """Write each unit into `unit_dir` (0644, atomically), replacing only units of ours."""
    report = ScheduleReport("systemd", "install", dry_run)
    for f in files:
        path = unit_dir / f.name
        if path.exists() and not _ours(path):
            raise InputError(
                f"{path} exists and was not written by backupkit: move it away, or install "
                "into another --unit-dir"
            )
        report.files.append((path, f"{INSTALLED_MARK}\n{f.text}"))
    ctl = _systemctl(scope)
    report.next_steps = [f"{ctl} daemon-reload", f"{ctl} enable --now {TIMER}"]
    if dry_run:
        return report
    try:
        unit_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        for path, text in report.files:
            atomic_write(path, text.encode(), mode=0o644)
    except OSError as err:
        raise from_os_error(
            err, f"writing units into {unit_dir}", "choose another --unit-dir, or run as its owner"
        ) from err
    return report


def uninstall_units(unit_dir: Path, *, scope: Scope, dry_run: bool = False) -> ScheduleReport:
    """Remove our units from `unit_dir`, and the timer's enablement link, if any."""
    report = ScheduleReport("systemd", "uninstall", dry_run)
    wants = unit_dir / "timers.target.wants" / TIMER
    if wants.is_symlink() and os.path.basename(os.readlink(wants)) == TIMER:
        report.removed.append(wants)
    for name in (TIMER, SERVICE, ALERT):
        path = unit_dir / name
        if _ours(path):
            report.removed.append(path)
        elif path.exists():
            report.warnings.append(f"{path} was not written by backupkit: left in place")
    ctl = _systemctl(scope)
    report.next_steps = [f"{ctl} stop {TIMER}", f"{ctl} daemon-reload"]
    if dry_run:
        return report
    try:
        for path in report.removed:
            path.unlink(missing_ok=True)
        if report.removed:
            fsync_dir(unit_dir)
    except OSError as err:
        raise from_os_error(err, f"removing units from {unit_dir}", "run as its owner") from err
    return report


def _block_markers(state_dir: Path) -> tuple[str, str]:
    return (
        f"# >>> backupkit schedule for {state_dir} >>>",
        f"# <<< backupkit schedule for {state_dir} <<<",
    )


def _without_block(crontab: str, state_dir: Path) -> list[str]:
    begin, end = _block_markers(state_dir)
    kept: list[str] = []
    inside = False
    for line in crontab.splitlines():
        if line == begin:
            inside = True
        elif line == end and inside:
            inside = False
        elif not inside:
            kept.append(line)
    return kept


def _crontab_program() -> str:
    name = os.environ.get(CRONTAB_ENV) or "crontab"
    found = shutil.which(name)
    if found is None:
        raise EnvironmentFault(
            f"{name} not found: install cron (or set ${CRONTAB_ENV}), or schedule with --systemd"
        )
    return found


def _read_crontab(program: str) -> str:
    ran = subprocess.run([program, "-l"], capture_output=True, text=True, check=False)
    if ran.returncode == 0:
        return ran.stdout
    if "no crontab" in ran.stderr.lower():
        return ""
    raise EnvironmentFault(f"crontab -l failed: {ran.stderr.strip() or ran.returncode}")


def _write_crontab(program: str, text: str) -> None:
    ran = subprocess.run([program, "-"], input=text, capture_output=True, text=True, check=False)
    if ran.returncode != 0:
        raise EnvironmentFault(f"crontab - refused the new crontab: {ran.stderr.strip()}")


def _edit_crontab(
    state_dir: Path, block: str | None, action: Literal["install", "uninstall"], dry_run: bool
) -> ScheduleReport:
    program = _crontab_program()
    before = _read_crontab(program)
    lines = _without_block(before, state_dir)
    if block is not None:
        begin, end = _block_markers(state_dir)
        lines += [begin, *block.rstrip("\n").splitlines(), end]
    after = "\n".join(lines) + "\n" if lines else ""
    report = ScheduleReport("cron", action, dry_run, crontab=after, entry=block)
    if action == "uninstall" and after == before:
        report.warnings.append(f"the crontab held no backupkit schedule for {state_dir}")
    if not dry_run and after != before:
        _write_crontab(program, after)
    return report


def install_cron(state_dir: Path, entry: str, *, dry_run: bool = False) -> ScheduleReport:
    """Put `entry` in the user's crontab between markers for `state_dir`, replacing the block
    an earlier install wrote there; every other line stays."""
    return _edit_crontab(state_dir, entry, "install", dry_run)


def uninstall_cron(state_dir: Path, *, dry_run: bool = False) -> ScheduleReport:
    """Remove `state_dir`'s block from the user's crontab; every other line stays."""
    return _edit_crontab(state_dir, None, "uninstall", dry_run)
