"""Scheduler units: a systemd service + timer pair, or a crontab line, that run `backup`.

The command uses the interpreter that runs backupkit now (so a virtual environment keeps working)
and absolute paths, and carries the environment settings that shaped the interactive run
(`OPENCLAW_CONFIG_PATH`, `OPENCLAW_OAUTH_DIR`, `BACKUPKIT_DIR`): cron and systemd start a job
with a clean environment, and without them a scheduled run would capture less and write
elsewhere. Everything is quoted for its reader: `%` (a specifier to systemd, a newline to cron)
and `$` (a variable to systemd) are escaped. `-q` keeps a good run silent (cron mails only when
something is wrong) and `--wait` lets a timer that fires during a long manual run queue behind
it instead of failing.
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
    state_dir: Path,
    backup_args: list[str],
    *,
    on_calendar: str,
    randomized_delay: str,
    env: dict[str, str] | None = None,
) -> str:
    command = " ".join(_systemd_quote(a) for a in backup_command(state_dir, backup_args))
    environment = "".join(
        f"Environment={_systemd_quote(f'{k}={v}')}\n" for k, v in sorted((env or {}).items())
    )
    where = _systemd_text(str(state_dir))
    return f"""# --- backupkit-backup.service ---
# Install both units into /etc/systemd/system/ (or ~/.config/systemd/user/ for a user unit),
# then: systemctl daemon-reload && systemctl enable --now backupkit-backup.timer
[Unit]
Description=backupkit: back up the OpenClaw state in {where}
# Wire failures to an alert: create backupkit-alert@.service (see docs/scheduling.md).
OnFailure=backupkit-alert@%n.service

[Service]
Type=oneshot
{environment}ExecStart={command}
# Be a quiet neighbour to the gateway: lower CPU and I/O priority.
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7

# --- backupkit-backup.timer ---
[Unit]
Description=backupkit: scheduled backup of {where}

[Timer]
OnCalendar={on_calendar}
RandomizedDelaySec={randomized_delay}
# A run missed while the machine was off happens at the next boot.
Persistent=true

[Install]
WantedBy=timers.target
"""


def _systemd_text(text: str) -> str:
    """Specifiers (`%n`) and variables (`$X`) stay literal."""
    return text.replace("%", "%%").replace("$", "$$")


def _systemd_quote(arg: str) -> str:
    arg = _systemd_text(arg)
    if arg and all(c.isalnum() or c in "-_./=:,@+" for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cron_line(
    state_dir: Path,
    backup_args: list[str],
    *,
    minute: int,
    hour: int,
    env: dict[str, str] | None = None,
) -> str:
    argv = backup_command(state_dir, backup_args)
    if env:
        argv = ["env", *(f"{k}={v}" for k, v in sorted(env.items())), *argv]
    command = " ".join(shlex.quote(a) for a in argv)
    # % is special in crontab (it means newline), so it must never appear unescaped.
    command = command.replace("%", "\\%")
    # cron mails whatever a job prints: drop the archive path a good run prints on stdout, keep
    # stderr, where every failure says what went wrong.
    return (
        "# backupkit: nightly backup; cron mails the output, which only a failure produces.\n"
        f"{minute} {hour} * * * {command} >/dev/null\n"
    )
