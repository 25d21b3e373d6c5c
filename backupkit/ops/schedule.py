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

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError


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


SERVICE = "backupkit-backup.service"
TIMER = "backupkit-backup.timer"
ALERT = "backupkit-alert@.service"
# The first line of every unit that `schedule --install` writes: `--uninstall` removes only
# files that carry it, never a unit an operator wrote.
INSTALLED_MARK = "# Written by `backupkit schedule --install`; `--uninstall` removes it."


@dataclass(frozen=True)
class UnitFile:
    name: str
    text: str


def systemd_unit_files(
    state_dir: Path,
    backup_args: list[str],
    *,
    on_calendar: str,
    randomized_delay: str,
    env: dict[str, str] | None = None,
) -> list[UnitFile]:
    """The service, its timer and the alert template its `OnFailure=` names."""
    command = " ".join(_systemd_quote(a) for a in backup_command(state_dir, backup_args))
    environment = "".join(
        f"Environment={_systemd_quote(f'{k}={v}')}\n" for k, v in sorted((env or {}).items())
    )
    where = _systemd_text(str(state_dir))
    service = f"""[Unit]
Description=backupkit: back up the OpenClaw state in {where}
# A failed run starts the alert (backupkit-alert@.service, installed beside this unit).
OnFailure=backupkit-alert@%n.service

[Service]
Type=oneshot
{environment}ExecStart={command}
# Be a quiet neighbour to the gateway: lower CPU and I/O priority.
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
"""
    timer = f"""[Unit]
Description=backupkit: scheduled backup of {where}

[Timer]
OnCalendar={on_calendar}
RandomizedDelaySec={randomized_delay}
# A run missed while the machine was off happens at the next boot.
Persistent=true

[Install]
WantedBy=timers.target
"""
    cat = shutil.which("systemd-cat") or "/usr/bin/systemd-cat"
    echo = shutil.which("echo") or "/bin/echo"
    alert = f"""# Started by OnFailure= of a backupkit unit; %i is the unit that failed. It writes
# one error line to the journal (journalctl -t backupkit -p err).
# To be mailed instead, replace ExecStart with, for example:
#   ExecStart=/bin/sh -c 'journalctl -u %i -n 20 --no-pager | mail -s "%i failed" ops@example.org'
[Unit]
Description=backupkit: alert that %i failed

[Service]
Type=oneshot
ExecStart={cat} -t backupkit -p err {echo} "%i failed on %H: journalctl -u %i says why"
"""
    return [UnitFile(SERVICE, service), UnitFile(TIMER, timer), UnitFile(ALERT, alert)]


def systemd_units(
    state_dir: Path,
    backup_args: list[str],
    *,
    on_calendar: str,
    randomized_delay: str,
    env: dict[str, str] | None = None,
) -> str:
    """The unit files as one text to read or save by hand, each under a `# --- name ---` line."""
    files = systemd_unit_files(
        state_dir, backup_args, on_calendar=on_calendar, randomized_delay=randomized_delay, env=env
    )
    head = (
        "# Install these units into /etc/systemd/system/ (or ~/.config/systemd/user/), or let\n"
        "# `backupkit schedule --systemd --install` do it; then:\n"
        "# systemctl daemon-reload && systemctl enable --now backupkit-backup.timer\n"
    )
    return head + "".join(f"\n# --- {f.name} ---\n{f.text}" for f in files)


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


# Checked before anything is written, so a typo fails now instead of leaving a timer that
# never fires. systemd-analyze, where there is one, is systemd's own parser; elsewhere (a
# machine that will use cron, a build host) a grammar check of the common forms stands in.
_CALENDAR_SHORTHANDS = {
    "minutely",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "annually",
    "quarterly",
    "semiannually",
}
_DAY = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*"
_DAYS = rf"{_DAY}(?:\.\.{_DAY})?(?:,{_DAY}(?:\.\.{_DAY})?)*"
_FIELD = r"(?:\*|\d+(?:\.\.\d+)?)(?:/\d+)?(?:,(?:\*|\d+(?:\.\.\d+)?)(?:/\d+)?)*"
_CALENDAR = re.compile(
    rf"^(?:{_DAYS}\s+)?(?:{_FIELD}-{_FIELD}-{_FIELD}\s+)?{_FIELD}:{_FIELD}(?::{_FIELD})?"
    r"(?:\s+(?:utc|[a-z]+/[a-z_]+))?$",
    re.IGNORECASE,
)
_TIMESPAN = re.compile(
    r"^(?:\d+(?:\.\d+)?\s*(?:us|usec|ms|msec|s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?"
    r"|w|weeks?|M|months?|y|years?)?\s*)+$"
)


def calendar_grammar_ok(expression: str) -> bool:
    """The fallback check: a shorthand (`daily`), or `[WEEKDAYS] [Y-M-D] H:M[:S] [UTC]` whose
    fields are numbers, `*`, ranges `a..b`, lists `a,b` and repetitions `/n`."""
    text = expression.strip()
    return text.lower() in _CALENDAR_SHORTHANDS or _CALENDAR.match(text) is not None


def timespan_grammar_ok(span: str) -> bool:
    """The fallback check of a systemd time span: `30min`, `1h 30m`, `90`."""
    return _TIMESPAN.match(span.strip()) is not None


def check_calendar(expression: str) -> None:
    """Refuse (exit 2) an `OnCalendar=` value systemd would not parse."""
    _check(
        "calendar",
        expression,
        "--on-calendar",
        "e.g. daily or 'Mon..Fri *-*-* 03:00'",
        calendar_grammar_ok,
    )


def check_timespan(span: str) -> None:
    """Refuse (exit 2) a `RandomizedDelaySec=` value systemd would not parse."""
    _check("timespan", span, "--randomized-delay", "e.g. 30min or 1h", timespan_grammar_ok)


def _check(
    verb: str, value: str, option: str, example: str, fallback: Callable[[str], bool]
) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        ran = subprocess.run([analyze, verb, value], capture_output=True, text=True, check=False)
        ok, why = ran.returncode == 0, (ran.stderr.strip().splitlines() or [""])[-1]
    else:
        ok, why = fallback(value), ""
    if not ok:
        said = f" ({why})" if why else ""
        raise OptionError(f"{option} {value!r} is not valid for systemd{said}: {example}")
