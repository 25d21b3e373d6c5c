"""The command group and what its commands share: global options, progress, JSON output.

Commands (cmd_*.py) are thin layers over the library API: human text comes from render.py,
options several commands share from options.py, and every error reaches the user through
main.py as one line on stderr and an exit code (README, "Exit codes"). `--json` prints exactly
one JSON object on stdout.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .. import jsonio
from ..progress import ProgressCallback
from . import examples

log = logging.getLogger("backupkit")


@dataclass
class Options:
    state_dir: Path | None
    verbose: int
    quiet: bool

    @contextlib.contextmanager
    def progress(self) -> Iterator[ProgressCallback | None]:
        """The progress callback for a library call made inside the block: a live display on a
        terminal, erased when the block ends (so what follows prints on a clean screen); None
        when stderr is not a terminal or with -q."""
        if self.quiet or not sys.stderr.isatty():
            yield None
            return
        # Imported here: rich is needed only where something is drawn, not by cron or --json.
        from rich.console import Console

        from .live import LiveProgress

        live = LiveProgress(Console(file=sys.stderr))
        with live.display:
            yield live

    def note(self, text: str) -> None:
        if not self.quiet:
            click.echo(text, err=True)


class _Json:
    """This run's one JSON object: whether it was printed, or the failed report that waits for
    the error edge to add its exit code and message (docs/json.md, "failure")."""

    printed = False
    pending: dict[str, Any] | None = None


def _write_json(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(jsonio.dumps(obj) + b"\n")
    sys.stdout.flush()
    _Json.printed = True


def json_out(obj: dict[str, Any]) -> None:
    """Print the command's JSON object; one that says `"ok": false` is held until the error that
    follows it is known, so that it goes out once, with `exit_code` and `error`."""
    if obj.get("ok") is False:
        _Json.pending = obj
    else:
        _write_json(obj)


def json_failure(exit_code: int, error: str) -> None:
    """Print the run's failure object: the held report, if any, with the error added."""
    if _Json.printed:
        return
    rest = {k: v for k, v in (_Json.pending or {}).items() if k != "ok"}
    _Json.pending = None
    _write_json({"ok": False, "exit_code": exit_code, "error": error, **rest})


def json_flush() -> None:
    """Print a held report of a command that ended without raising."""
    if _Json.pending is not None and not _Json.printed:
        _write_json(_Json.pending)
    _Json.pending = None


def json_reset() -> None:
    _Json.printed = False
    _Json.pending = None


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]}, epilog=examples.epilog("backupkit")
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="OpenClaw state dir (default: $OPENCLAW_STATE_DIR, else ~/.openclaw).",
)
@click.option("-v", "--verbose", count=True, help="More detail on stderr; tracebacks on errors.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Print nothing on stderr unless something is wrong."
)
@click.version_option(package_name="backupkit")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None, verbose: int, quiet: bool) -> None:
    """Back up, verify and restore the SQLite state of an OpenClaw gateway."""
    ctx.obj = Options(state_dir=state_dir, verbose=verbose, quiet=quiet)
    logging.basicConfig(
        level=logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING,
        format="backupkit: %(message)s",
        stream=sys.stderr,
    )
