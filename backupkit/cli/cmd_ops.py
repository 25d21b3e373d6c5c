"""`list`, `prune` and `status`: this state dir's archives, retention and monitoring."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import (
    IntegrityError,
    from_os_error,
)
from ..offsite.catalog import list_remote
from ..offsite.prune import prune_remote
from ..offsite.url import remote_from
from ..ops.catalog import list_archives
from ..ops.prometheus import write_prometheus
from ..ops.prune import prune
from ..ops.retention import Policy
from ..ops.status import DEFAULT_MAX_AGE, backup_status
from ..state.layout import existing_layout, resolve_output_dir
from . import examples, render
from .app import Options, cli, json_out
from .options import archive_dir_option, json_option, remote_option


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


@cli.command(name="prune", epilog=examples.epilog("prune"))
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
@remote_option
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
    remote: str | None,
    as_json: bool,
) -> None:
    """Delete archives a retention policy does not keep (restic forget semantics); with
    --remote, this state dir's remote copies too (never the newest proven one, never a locked
    one, never another state dir's)."""
    policy = _policy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly)
    chosen = list(reasons) or None
    where = remote_from(remote)
    report = prune(opts.state_dir, policy=policy, output=output, reasons=chosen, dry_run=dry_run)
    remote_report = (
        prune_remote(opts.state_dir, where.url, policy=policy, reasons=chosen, dry_run=dry_run)
        if where is not None
        else None
    )
    if as_json:
        body = report.to_dict()
        if remote_report is not None:
            body["remote"] = remote_report.to_dict()
        json_out(body)
        return
    for line in render.prune_lines(report):
        click.echo(line)
    for warning in report.warnings:
        opts.note(f"backupkit: warning: {warning}")
    opts.note(render.prune_summary(report))
    if remote_report is not None:
        for line in render.prune_lines(remote_report):
            click.echo(line)
        for warning in remote_report.warnings:
            opts.note(f"backupkit: warning: {warning}")
        opts.note(render.prune_summary(remote_report))


@cli.command(name="list", epilog=examples.epilog("list"))
@archive_dir_option
@remote_option
@json_option
@click.pass_obj
def list_cmd(opts: Options, output: Path | None, remote: str | None, as_json: bool) -> None:
    """Archives and runs, newest first, with the last verify result of each; with --remote,
    each one's remote copy beside it."""
    layout = existing_layout(opts.state_dir)
    out = resolve_output_dir(output, layout.state_dir)
    cat = list_archives(layout.state_dir, output=out)
    where = remote_from(remote)
    remote_cat = list_remote(layout.state_dir, where.url) if where is not None else None
    if as_json:
        body = {
            "ok": True,
            "output_dir": str(out),
            "archives": [e.to_dict() for e in cat.entries],
            "problems": cat.problems,
        }
        if remote_cat is not None:
            body["remote"] = {
                "url": remote_cat.remote.url,
                "copies": [e.to_dict() for e in remote_cat.entries],
                "problems": remote_cat.problems,
            }
        json_out(body)
        return
    copies = {e.backup_id: e for e in remote_cat.own()} if remote_cat is not None else None
    local = {e.backup_id for e in cat.entries}
    remote_only = [r for r in remote_cat.entries if r.backup_id not in local] if remote_cat else []
    if cat.entries or remote_only:
        click.echo("\n".join(render.list_table(cat.entries, copies, remote_only)))
    for problem in cat.problems:
        opts.note(f"backupkit: warning: {problem}")
    if not cat.entries and not (remote_cat and remote_cat.entries):
        opts.note(f"backupkit: no archives in {out}")


@cli.command(name="status", epilog=examples.epilog("status"))
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
@remote_option
@json_option
@click.pass_obj
def status_cmd(
    opts: Options,
    max_age: str,
    output: Path | None,
    prometheus: Path | None,
    remote: str | None,
    as_json: bool,
) -> None:
    """Age and result of the last good backup (and, with --remote, of the newest proven remote
    copy); exit 1 when stale or failed."""
    report = backup_status(opts.state_dir, max_age=max_age, output=output, remote=remote)
    if prometheus is not None:
        try:
            write_prometheus(prometheus, report, report.state_dir)
        except OSError as err:
            raise from_os_error(err, f"writing {prometheus}") from err
    if as_json:
        json_out(report.to_dict())
    else:
        click.echo(render.status_line(report))
        if report.remote is not None:
            click.echo(render.remote_status_line(report.remote))
    if not report.ok:
        raise IntegrityError(f"backup status: {'; '.join(report.problems)}")
