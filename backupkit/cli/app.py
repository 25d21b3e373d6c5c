"""The command group and what its commands share: global options, progress, JSON output.

Commands (cmd_*.py) are thin layers over the library API: human text comes from render.py,
options several commands share from options.py, and every error reaches the user through
main.py as one line on stderr and an exit code (README, "Exit codes"). `--json` prints exactly
one JSON object on stdout.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .. import jsonio
from ..progress import ProgressCallback, ProgressEvent

log = logging.getLogger("backupkit")


@dataclass
class Options:
    state_dir: Path | None
    verbose: int
    quiet: bool

    def progress(self) -> ProgressCallback | None:
        if self.quiet or not sys.stderr.isatty():
            return None
        return _draw_progress

    def note(self, text: str) -> None:
        if not self.quiet:
            click.echo(text, err=True)


def _draw_progress(event: ProgressEvent) -> None:
    total = f"/{event.total}" if event.total else ""
    line = f"\r\033[K{event.stage} {event.done}{total} {event.detail}"[:200]
    sys.stderr.write(line)
    if event.total and event.done >= event.total:
        sys.stderr.write("\r\033[K")
    sys.stderr.flush()


class _Printed:
    """Whether this run printed its JSON object already: a failure after it adds none."""

    json = False


def json_out(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(jsonio.dumps(obj) + b"\n")
    sys.stdout.flush()
    _Printed.json = True


def json_printed() -> bool:
    return _Printed.json


def reset_printed() -> None:
    _Printed.json = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
