"""Scheduler units: a systemd service + timer pair, or a crontab line, that run `backup`.

The command uses the interpreter that runs backupkit now (so a virtual environment keeps working)
and absolute paths. `-q` keeps a good run silent (cron mails only when something is wrong) and
`--wait` lets a timer that fires during a long manual run queue behind it instead of failing.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def backup_command(state_dir: Path, backup_args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "backupkit",
        "--state-dir",
        str(state_dir),
        "-q",
        "backup",
        *backup_args,
    ]


def systemd_units(
    state_dir: Path, backup_args: list[str], *, on_calendar: str, randomized_delay: str
) -> str:
    command = " ".join(_systemd_quote(a) for a in backup_command(state_dir, backup_args))
    return f"""# --- backupkit-backup.service ---
# Install both units into /etc/systemd/system/ (or ~/.config/systemd/user/ for a user unit),
# then: systemctl daemon-reload && systemctl enable --now backupkit-backup.timer
[Unit]
Description=backupkit: back up the OpenClaw state in {state_dir}
# Wire failures to an alert: create backupkit-alert@.service (see docs/scheduling.md).
OnFailure=backupkit-alert@%n.service

[Service]
Type=oneshot
ExecStart={command}
# Be a quiet neighbour to the gateway: lower CPU and I/O priority.
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7

# --- backupkit-backup.timer ---
[Unit]
Description=backupkit: scheduled backup of {state_dir}

[Timer]
OnCalendar={on_calendar}
RandomizedDelaySec={randomized_delay}
# A run missed while the machine was off happens at the next boot.
Persistent=true

[Install]
WantedBy=timers.target
"""


def _systemd_quote(arg: str) -> str:
    if arg and all(c.isalnum() or c in "-_./=:,@+" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cron_line(state_dir: Path, backup_args: list[str], *, minute: int, hour: int) -> str:
    command = " ".join(shlex.quote(a) for a in backup_command(state_dir, backup_args))
    # % is special in crontab (it means newline), so it must never appear unescaped.
    command = command.replace("%", "\\%")
    # cron mails whatever a job prints: drop the archive path a good run prints on stdout, keep
    # stderr, where every failure says what went wrong.
    return (
        "# backupkit: nightly backup; cron mails the output, which only a failure produces.\n"
        f"{minute} {hour} * * * {command} >/dev/null\n"
    )
