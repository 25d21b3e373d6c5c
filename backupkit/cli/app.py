"""The command line: thin commands over the library API.

Every error reaches the user as one line on stderr and an exit code (README, "Exit codes");
tracebacks only with -v. `--json` prints exactly one JSON object on stdout. Human text comes from
render.py; options several commands share come from options.py.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .. import jsonio
from ..archive.reader import read_manifest
from ..backup.pipeline import ALWAYS_VERIFIED_REASONS, create_backup
from ..backup.plan import plan_backup
from ..errors import (
    EXIT_ENVIRONMENT,
    EXIT_USAGE,
    BackupError,
    EnvironmentFault,
    InputError,
    IntegrityError,
    from_os_error,
)
from ..ops import ledger
from ..ops.catalog import catalogue
from ..ops.prometheus import write_prometheus
from ..ops.prune import prune
from ..ops.retention import Policy
from ..ops.schedule import cron_line, systemd_units
from ..ops.status import DEFAULT_MAX_AGE, backup_status
from ..progress import ProgressCallback, ProgressEvent
from ..restore.run import restore_archive
from ..state.layout import existing_layout, resolve_output_dir, settings_from_environment
from ..verify.verdict import verify_archive
from . import render
from .options import archive_dir_option, json_option

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


def _json_out(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(jsonio.dumps(obj) + b"\n")
    sys.stdout.flush()


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


@cli.command()
@archive_dir_option
@click.option("--reason", default="manual", show_default=True, help="Why this backup was taken.")
@click.option("--no-workspaces", is_flag=True, help="Leave workspace directories out.")
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Leave out paths matching GLOB (relative path or file name); repeatable.",
)
@click.option("--no-verify", is_flag=True, help="Do not verify the archive after writing it.")
@click.option("--dry-run", is_flag=True, help="Show what would be captured; write nothing.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Wait this long for another backup of the same state to finish.",
)
@click.option(
    "--compression",
    type=click.Choice(["fast", "default", "small"]),
    default="default",
    show_default=True,
    help="zstd level: fast (1), default (3), small (9).",
)
@click.option(
    "--prune",
    "prune_policy",
    metavar="POLICY",
    default=None,
    help="After a successful, verified backup, apply retention, e.g. daily=7,weekly=4.",
)
@json_option
@click.pass_obj
def backup(
    opts: Options,
    output: Path | None,
    reason: str,
    no_workspaces: bool,
    excludes: tuple[str, ...],
    no_verify: bool,
    dry_run: bool,
    wait: float,
    compression: str,
    prune_policy: str | None,
    as_json: bool,
) -> None:
    """Write one archive of the whole state and print its path."""
    policy = Policy.parse(prune_policy) if prune_policy else None
    if policy is not None and no_verify and reason not in ALWAYS_VERIFIED_REASONS:
        raise InputError("--prune applies only after a verified backup: drop --no-verify")
    if dry_run:
        plan = plan_backup(
            opts.state_dir, output=output, include_workspaces=not no_workspaces, excludes=excludes
        )
        if as_json:
            _json_out(plan.to_dict())
        else:
            click.echo(render.describe_plan(plan.to_dict()))
        return
    result = create_backup(
        opts.state_dir,
        output=output,
        reason=reason,
        verify=not no_verify,
        include_workspaces=not no_workspaces,
        excludes=excludes,
        wait=wait,
        compression=compression,
        progress=opts.progress(),
    )
    for warning in result.warnings:
        opts.note(f"backupkit: warning: {warning}")
    pruned = None
    if policy is not None and result.ok and result.verified:
        pruned = prune(opts.state_dir, policy=policy, output=result.archive.parent)
        for item in pruned.removed:
            opts.note(f"backupkit: pruned {item.archive}")
    if as_json:
        body = result.to_dict()
        if pruned is not None:
            body["pruned"] = [i.archive for i in pruned.removed]
        _json_out(body)
    else:
        if result.archive.exists():
            click.echo(os.fspath(result.archive))
        if result.ok:
            verified = "verified" if result.verified else "not verified (--no-verify)"
            opts.note(
                f"backupkit: {len(result.manifest.databases)} databases, "
                f"{len(result.manifest.files)} files, {result.size_bytes} bytes, {verified}, "
                f"{result.seconds:.1f}s"
            )
    if not result.ok:
        for problem in result.problems[1:]:
            log.info(problem)
        where = (
            f"backup written to {result.archive}"
            if result.archive.exists()
            else f"{result.manifest.reason} snapshot removed"
        )
        more = len(result.problems) - 1
        raise IntegrityError(
            f"{where} but not proven: {result.problems[0]}"
            + (f" (+{more} more, see -v)" if more else "")
        )


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path))
@json_option
@click.option("--no-record", is_flag=True, help="Do not record the result in backup_runs.")
@click.pass_obj
def verify(opts: Options, archive: Path, as_json: bool, no_record: bool) -> None:
    """Prove an archive restorable; exit 1 on any defect."""
    report = verify_archive(
        archive, state_dir=opts.state_dir, record=not no_record, progress=opts.progress()
    )
    if as_json:
        _json_out(report.to_dict())
    else:
        for defect in report.defects:
            click.echo(f"defect: {defect}")
        for warning in report.warnings:
            opts.note(f"backupkit: warning: {warning}")
        click.echo(render.verify_line(report))
    if not report.ok:
        raise IntegrityError(f"archive {report.archive} failed verification: {report.defects[0]}")


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path))
@click.option(
    "--target",
    type=click.Path(path_type=Path),
    default=None,
    help="Restore into this missing or empty directory.",
)
@click.option("--in-place", is_flag=True, help="Replace the live state (after a safety snapshot).")
@click.option("--dry-run", is_flag=True, help="Show the plan; touch nothing.")
@click.option(
    "--agent",
    "agents",
    multiple=True,
    metavar="ID",
    help="Restore only this agent's database and directory; repeatable.",
)
@click.option(
    "--force", is_flag=True, help="In place: go ahead even if a process has a database open."
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="In place: where the safety snapshot goes (default: the backup directory).",
)
@click.option(
    "--delete-extra",
    is_flag=True,
    help="In place: remove live files the archive does not hold (default: keep them).",
)
@click.option(
    "--from-other-state",
    is_flag=True,
    help="In place: the archive is of another state dir, and restoring it here is intended.",
)
@json_option
@click.pass_obj
def restore(
    opts: Options,
    archive: Path,
    target: Path | None,
    in_place: bool,
    dry_run: bool,
    agents: tuple[str, ...],
    force: bool,
    output: Path | None,
    delete_extra: bool,
    from_other_state: bool,
    as_json: bool,
) -> None:
    """Restore an archive into a fresh directory (--target) or over the live state (--in-place)."""
    report = restore_archive(
        archive,
        target=target,
        in_place=in_place,
        dry_run=dry_run,
        agents=list(agents) or None,
        force=force,
        state_dir=opts.state_dir,
        output=output,
        delete_extra=delete_extra,
        from_other_state=from_other_state,
        progress=opts.progress(),
    )
    if as_json:
        _json_out(report.to_dict())
        return
    if report.recovered:
        opts.note(f"backupkit: {report.recovered}")
    if report.safety_snapshot:
        click.echo(f"safety snapshot: {report.safety_snapshot}")
    if dry_run or opts.verbose:
        for line in render.restore_items(report):
            click.echo(line)
    for note in report.notes:
        opts.note(f"backupkit: {note}")
    for warning in report.warnings:
        opts.note(f"backupkit: warning: {warning}")
    click.echo(render.restore_line(report))


@cli.command()
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as one JSON object.")
def show(archive: Path, as_json: bool) -> None:
    """Print an archive's manifest, readably."""
    manifest = read_manifest(archive)
    if as_json:
        _json_out(manifest.model_dump(mode="json"))
    else:
        click.echo(render.describe_manifest(manifest))


def _policy(last: int, hourly: int, daily: int, weekly: int, monthly: int, yearly: int) -> Policy:
    counts = {
        "last": last,
        "hourly": hourly,
        "daily": daily,
        "weekly": weekly,
        "monthly": monthly,
        "yearly": yearly,
    }
    return Policy({k: v for k, v in counts.items() if v})


@cli.command(name="prune")
@archive_dir_option
@click.option("--keep-last", type=click.IntRange(min=0), default=0, metavar="N")
@click.option("--keep-hourly", type=click.IntRange(min=0), default=0, metavar="N")
@click.option("--keep-daily", type=click.IntRange(min=0), default=0, metavar="N")
@click.option("--keep-weekly", type=click.IntRange(min=0), default=0, metavar="N")
@click.option("--keep-monthly", type=click.IntRange(min=0), default=0, metavar="N")
@click.option("--keep-yearly", type=click.IntRange(min=0), default=0, metavar="N")
@click.option(
    "--reason",
    "reasons",
    multiple=True,
    metavar="REASON",
    help="Apply the policy only to archives with this reason (repeatable); by default "
    "every reason but pre-migration and pre-restore, which are kept.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be kept and removed, and why.")
@json_option
@click.pass_obj
def prune_cmd(
    opts: Options,
    output: Path | None,
    keep_last: int,
    keep_hourly: int,
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    keep_yearly: int,
    reasons: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete archives a retention policy does not keep (restic forget semantics)."""
    policy = _policy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    report = prune(
        opts.state_dir, policy=policy, output=output, reasons=list(reasons) or None, dry_run=dry_run
    )
    if as_json:
        _json_out(report.to_dict())
        return
    for line in render.prune_lines(report):
        click.echo(line)
    for warning in report.warnings:
        opts.note(f"backupkit: warning: {warning}")
    opts.note(render.prune_summary(report))


@cli.command(name="list")
@archive_dir_option
@json_option
@click.pass_obj
def list_cmd(opts: Options, output: Path | None, as_json: bool) -> None:
    """Archives and runs, newest first, with the last verify result of each."""
    layout = existing_layout(opts.state_dir)
    out = resolve_output_dir(output, layout.state_dir)
    cat = catalogue(layout.state_dir, ledger.read(layout.global_db), [out])
    if as_json:
        _json_out(
            {
                "ok": True,
                "output": str(out),
                "archives": [e.to_dict() for e in cat.entries],
                "problems": cat.problems,
            }
        )
        return
    for e in cat.entries:
        click.echo(render.list_line(e))
    for problem in cat.problems:
        opts.note(f"backupkit: warning: {problem}")
    if not cat.entries:
        opts.note(f"backupkit: no archives in {out}")


@cli.command(name="status")
@click.option(
    "--max-age",
    default=DEFAULT_MAX_AGE,
    show_default=True,
    metavar="DURATION",
    help="Oldest acceptable last good backup (90m, 26h, 2d, 1w).",
)
@archive_dir_option
@click.option(
    "--prometheus",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Also write the status as a node_exporter textfile (written atomically, 0644).",
)
@json_option
@click.pass_obj
def status_cmd(
    opts: Options, max_age: str, output: Path | None, prometheus: Path | None, as_json: bool
) -> None:
    """Age and result of the last good backup; exit 1 when stale or failed."""
    report = backup_status(opts.state_dir, max_age=max_age, output=output)
    if prometheus is not None:
        try:
            write_prometheus(prometheus, report, report.state_dir)
        except OSError as err:
            raise from_os_error(err, f"writing {prometheus}") from err
    if as_json:
        _json_out(report.to_dict())
    else:
        click.echo(render.status_line(report))
    if not report.ok:
        raise IntegrityError(f"backup status: {'; '.join(report.problems)}")


@cli.command(name="schedule")
@click.option("--systemd", "kind", flag_value="systemd", help="Print a service + timer pair.")
@click.option("--cron", "kind", flag_value="cron", help="Print a crontab line.")
@click.option(
    "--on-calendar",
    default="*-*-* 03:00:00",
    show_default=True,
    help="systemd OnCalendar= of the timer.",
)
@click.option(
    "--randomized-delay",
    default="30min",
    show_default=True,
    help="systemd RandomizedDelaySec= (spreads load across machines).",
)
@click.option(
    "--at",
    "at_time",
    default="03:17",
    show_default=True,
    metavar="HH:MM",
    help="cron: the time of day.",
)
@click.option("--output", type=click.Path(path_type=Path), default=None)
@click.option("--reason", default="scheduled", show_default=True)
@click.option("--no-workspaces", is_flag=True)
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB")
@click.option("--compression", type=click.Choice(["fast", "default", "small"]), default=None)
@click.option("--prune", "prune_policy", metavar="POLICY", default=None)
@click.option(
    "--wait", type=click.FloatRange(min=0), default=3600, show_default=True, metavar="SECONDS"
)
@click.pass_obj
def schedule_cmd(
    opts: Options,
    kind: str | None,
    on_calendar: str,
    randomized_delay: str,
    at_time: str,
    output: Path | None,
    reason: str,
    no_workspaces: bool,
    excludes: tuple[str, ...],
    compression: str | None,
    prune_policy: str | None,
    wait: float,
) -> None:
    """Print systemd units or a crontab line that run `backup` on a timer."""
    if kind is None:
        raise InputError("schedule needs --systemd or --cron")
    state = existing_layout(opts.state_dir).state_dir
    args: list[str] = ["--reason", reason, "--wait", f"{wait:g}"]
    if output is not None:
        args += ["--output", str(Path(os.path.abspath(output)))]
    if no_workspaces:
        args.append("--no-workspaces")
    for glob in excludes:
        args += ["--exclude", glob]
    if compression:
        args += ["--compression", compression]
    if prune_policy:
        args += ["--prune", Policy.parse(prune_policy).describe()]
    if kind == "systemd":
        click.echo(
            systemd_units(
                state,
                args,
                on_calendar=on_calendar,
                randomized_delay=randomized_delay,
                env=settings_from_environment(),
            ),
            nl=False,
        )
    else:
        hour, _, minute = at_time.partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            raise InputError(f"--at {at_time!r}: write it as HH:MM")
        click.echo(
            cron_line(
                state, args, minute=int(minute), hour=int(hour), env=settings_from_environment()
            ),
            nl=False,
        )


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
