"""The command line's one edge: run a command, turn every error into one line and its exit code
(tracebacks only with -v), make SIGTERM an interrupt like Ctrl-C."""

from __future__ import annotations

import io
import signal
import sys
import traceback

import click

from ..errors import (
    EXIT_ENVIRONMENT,
    EXIT_USAGE,
    BackupError,
    EnvironmentFault,
    OptionError,
    from_os_error,
)
from . import cmd_backup, cmd_key, cmd_ops, cmd_read, cmd_remote  # noqa: F401 - registers them
from .app import cli, json_failure, json_flush, json_reset

# Options of the group that people also type after the command (`backup -q`, `list -v`).
_GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")
_GLOBAL_VALUED = ("--state-dir",)


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options given after the command in front of it, where click reads them.
    No command has an option of the same name, and nothing after `--` is touched."""
    commands = set(cli.commands)
    at = next((i for i, a in enumerate(args) if a in commands), None)
    if at is None:
        return args
    head, tail, moved = args[: at + 1], [], []
    i = at + 1
    while i < len(args):
        a = args[i]
        if a == "--":
            tail += args[i:]
            break
        short_v = a.startswith("-v") and len(a) > 1 and set(a[1:]) == {"v"}
        if a in _GLOBAL_FLAGS or short_v:
            moved.append(a)
        elif a in _GLOBAL_VALUED and i + 1 < len(args):
            moved += [a, args[i + 1]]
            i += 1
        elif a.startswith(tuple(f"{o}=" for o in _GLOBAL_VALUED)):
            moved.append(a)
        else:
            tail.append(a)
        i += 1
    return moved + head + tail if moved else args


def command_path(args: list[str]) -> str:
    """`backupkit backup`, `backupkit key new`: the command the arguments run, for a help hint."""
    words = ["backupkit"]
    group: click.Group = cli
    for a in args:
        sub = group.commands.get(a)
        if sub is None:
            continue
        words.append(a)
        if not isinstance(sub, click.Group):
            break
        group = sub
    return " ".join(words)


def _fail(message: str, code: int, verbose: bool, as_json: bool) -> int:
    if verbose:
        traceback.print_exc(file=sys.stderr)
    sys.stderr.write(f"backupkit: error: {message}\n")
    sys.stderr.flush()
    if as_json:
        json_failure(code, message)
    return code


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    verbose = any(
        a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args
    )
    as_json = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    json_reset()
    for stream in (sys.stdout, sys.stderr):
        # A file name that is not UTF-8 prints as its own bytes, as ls prints it, not a crash.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        rv = cli.main(args=args, prog_name="backupkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "backupkit"
        hint = f" (see {where} --help)"
        said = exc.format_message().splitlines()[0].rstrip(".")
        return _fail(said + hint, EXIT_USAGE, False, as_json)
    except click.ClickException as exc:
        return _fail(exc.format_message(), EXIT_USAGE, False, as_json)
    except (click.Abort, KeyboardInterrupt):
        return _fail(
            "interrupted: nothing is left half-done (a backup publishes no partial archive; an "
            "in-place restore is either not begun or complete); the next run cleans up",
            EXIT_ENVIRONMENT,
            verbose,
            as_json,
        )
    except OptionError as exc:
        hint = f" (see {command_path(args)} --help)"
        return _fail(str(exc) + hint, exc.exit_code, verbose, as_json)
    except BackupError as exc:
        return _fail(str(exc), exc.exit_code, verbose, as_json)
    except OSError as exc:
        return _fail(
            str(from_os_error(exc, "running")), EnvironmentFault.exit_code, verbose, as_json
        )
    except Exception as exc:  # a bug: still one line, and the traceback on request
        return _fail(
            f"internal error: {exc!r} (rerun with -v and report it)",
            EXIT_ENVIRONMENT,
            verbose,
            as_json,
        )
    json_flush()
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
