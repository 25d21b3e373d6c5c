"""The command line's one edge: run a command, turn every error into one line and its exit code
(tracebacks only with -v), make SIGTERM an interrupt like Ctrl-C."""

from __future__ import annotations

import signal
import sys
import traceback

import click

from ..errors import (
    EXIT_ENVIRONMENT,
    EXIT_USAGE,
    BackupError,
    EnvironmentFault,
    from_os_error,
)
from . import cmd_backup, cmd_ops, cmd_read  # noqa: F401 - registers the commands
from .app import cli


def _fail(message: str, code: int, verbose: bool) -> int:
    if verbose:
        traceback.print_exc(file=sys.stderr)
    sys.stderr.write(f"backupkit: error: {message}\n")
    sys.stderr.flush()
    return code


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    verbose = any(
        a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args
    )
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = cli.main(args=args, prog_name="backupkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        hint = " (see backupkit --help)"
        return _fail(exc.format_message().splitlines()[0] + hint, EXIT_USAGE, False)
    except click.ClickException as exc:
        return _fail(exc.format_message(), EXIT_USAGE, False)
    except (click.Abort, KeyboardInterrupt):
        return _fail(
            "interrupted: nothing is left half-done (a backup publishes no partial archive; an "
            "in-place restore is either not begun or complete); the next run cleans up",
            EXIT_ENVIRONMENT,
            verbose,
        )
    except BackupError as exc:
        return _fail(str(exc), exc.exit_code, verbose)
    except OSError as exc:
        return _fail(str(from_os_error(exc, "running")), EnvironmentFault.exit_code, verbose)
    except Exception as exc:  # a bug: still one line, and the traceback on request
        return _fail(
            f"internal error: {exc!r} (rerun with -v and report it)", EXIT_ENVIRONMENT, verbose
        )
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
