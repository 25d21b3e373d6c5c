"""Where things are: the state dir, its config and credentials, and where archives go.

The defaults and overrides are those of docs/backup.md ("What is captured"); this module is the
only place that reads the environment variables behind them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..fsutil import is_within

GLOBAL_DB_REL = Path("state") / "openclaw.sqlite"
AGENT_DB_NAME = "openclaw-agent.sqlite"
# backupkit's own files in a state dir: never archived, and the only names it writes there
# besides restored state.
LOCK_NAME = "backupkit.lock"
JOURNAL_NAME = "backupkit-restore.journal"
RESTORE_TEMP_PREFIX = ".bk-restore-"
# Stands in a `restore --target` directory until the restore is whole: a directory that still
# has it after a killed run is a partial restore, and no backup or restore takes it for a state.
INCOMPLETE_MARK = ".backupkit-restore-incomplete"


@dataclass(frozen=True)
class StateLayout:
    """The resolved locations of one OpenClaw state dir."""

    state_dir: Path
    config_path: Path
    credentials_dir: Path

    @property
    def global_db(self) -> Path:
        return self.state_dir / GLOBAL_DB_REL

    @property
    def lock_path(self) -> Path:
        return self.state_dir / LOCK_NAME


def _absolute(path: str | os.PathLike[str]) -> Path:
    # abspath, not resolve(): a state dir reached through a symlink keeps the name the user gave
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def resolve_state_dir(state_dir: str | os.PathLike[str] | None) -> Path:
    """`--state-dir`, else `$OPENCLAW_STATE_DIR`, else `~/.openclaw` (not checked for existence)."""
    if state_dir is not None:
        return _absolute(state_dir)
    env = os.environ.get("OPENCLAW_STATE_DIR")
    if env:
        return _absolute(env)
    return _absolute("~/.openclaw")


def layout_for(state_dir: Path) -> StateLayout:
    config = os.environ.get("OPENCLAW_CONFIG_PATH")
    creds = os.environ.get("OPENCLAW_OAUTH_DIR")
    return StateLayout(
        state_dir=state_dir,
        config_path=_absolute(config) if config else state_dir / "openclaw.json",
        credentials_dir=_absolute(creds) if creds else state_dir / "credentials",
    )


# The environment variables that shape a run besides its options: a scheduled run must carry
# them, since cron and systemd start it with a clean environment.
SETTINGS_ENV = (
    "OPENCLAW_CONFIG_PATH",
    "OPENCLAW_OAUTH_DIR",
    "BACKUPKIT_DIR",
    "BACKUPKIT_RECIPIENTS_FILE",
)


def settings_from_environment() -> dict[str, str]:
    """Those of SETTINGS_ENV that are set now, as absolute paths."""
    return {k: os.fspath(_absolute(v)) for k in SETTINGS_ENV if (v := os.environ.get(k))}


def existing_layout(state_dir: str | os.PathLike[str] | None) -> StateLayout:
    """Resolve the state dir and insist that it exists (exit 2 otherwise, creating nothing)."""
    path = resolve_state_dir(state_dir)
    if not path.exists():
        raise InputError(
            f"state dir {path} does not exist: pass --state-dir or set OPENCLAW_STATE_DIR"
        )
    if not path.is_dir():
        raise InputError(f"state dir {path} is not a directory")
    if (path / INCOMPLETE_MARK).exists():
        raise InputError(
            f"{path} holds a restore that never finished ({INCOMPLETE_MARK} is there): remove "
            "the directory and restore again"
        )
    return layout_for(path)


def default_output_dir(state_dir: Path) -> Path:
    """`$BACKUPKIT_DIR`, else `<state dir name>-backups` beside the state dir."""
    env = os.environ.get("BACKUPKIT_DIR")
    if env:
        return _absolute(env)
    return state_dir.parent / f"{state_dir.name}-backups"


def resolve_output_dir(output: str | os.PathLike[str] | None, state_dir: Path) -> Path:
    out = _absolute(output) if output is not None else default_output_dir(state_dir)
    if is_within(out, state_dir):
        raise InputError(
            f"output dir {out} is inside the state dir {state_dir}: choose a directory outside it"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a directory")
    return out
