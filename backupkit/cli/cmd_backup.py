"""`backup` and `schedule`: write archives now, or on a timer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ..archive.crypt import parse_recipients, resolve_recipients
from ..backup.pipeline import ALWAYS_VERIFIED_REASONS, create_backup
from ..backup.plan import plan_backup
from ..errors import (
    IntegrityError,
    OptionError,
)
from ..offsite.prune import prune_remote
from ..offsite.url import remote_from
from ..ops.prune import prune
from ..ops.retention import Policy
from ..ops.schedule import (
    check_calendar,
    check_timespan,
    cron_line,
    systemd_unit_files,
    systemd_units,
)
from ..ops.schedule_install import (
    ScheduleReport,
    Scope,
    default_unit_dir,
    install_cron,
    install_units,
    uninstall_cron,
    uninstall_units,
)
from ..state.layout import existing_layout, settings_from_environment
from . import examples, render
from .app import Options, cli, json_out, log
from .options import (
    COMPRESSION_CHOICE,
    COMPRESSION_HELP,
    PRUNE_HELP,
    archive_dir_option,
    encrypt_options,
    exclude_option,
    json_option,
    no_workspaces_option,
    remote_options,
    wait_option,
)


@cli.command(epilog=examples.epilog("backup"))
@archive_dir_option
@click.option("--reason", default="manual", show_default=True, help="Why this backup was taken.")
@no_workspaces_option
@exclude_option
@click.option("--no-verify", is_flag=True, help="Do not verify the archive after writing it.")
@click.option("--dry-run", is_flag=True, help="Show what would be captured; write nothing.")
@wait_option
@click.option(
    "--compression",
    type=COMPRESSION_CHOICE,
    default="default",
    show_default=True,
    help=COMPRESSION_HELP,
)
@click.option(
    "--full",
    is_flag=True,
    help="Capture every database; copy nothing from earlier archives, even what is unchanged.",
)
@click.option("--prune", "prune_policy", metavar="POLICY", default=None, help=PRUNE_HELP)
@encrypt_options
@remote_options
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
    full: bool,
    prune_policy: str | None,
    encrypt_to: tuple[str, ...],
    recipients_file: Path | None,
    to: str | None,
    retention_days: int | None,
    as_json: bool,
) -> None:
    """Write one archive of the whole state and print its path."""
    policy = Policy.parse(prune_policy) if prune_policy else None
    if policy is not None and no_verify and reason not in ALWAYS_VERIFIED_REASONS:
        raise OptionError("--prune applies only after a verified backup: drop --no-verify")
    if dry_run:
        plan = plan_backup(
            opts.state_dir, output=output, include_workspaces=not no_workspaces, excludes=excludes
        )
        keys = resolve_recipients(encrypt_to, recipients_file)  # refused now, as a run would
        body = {**plan.to_dict(), "encrypted": keys is not None, "recipient_count": len(keys or ())}
        if as_json:
            json_out(body)
        else:
            click.echo(render.describe_plan(body))
        return
    with opts.progress() as progress:
        result = create_backup(
            opts.state_dir,
            output=output,
            reason=reason,
            verify=not no_verify,
            include_workspaces=not no_workspaces,
            excludes=excludes,
            wait=wait,
            compression=compression,
            progress=progress,
            encrypt_to=encrypt_to,
            recipients_file=recipients_file,
            to=to,
            retention_days=retention_days,
            reuse=not full,
        )
    for warning in result.warnings:
        opts.note(f"backupkit: warning: {warning}")
    pruned = None
    remote_pruned = None
    if policy is not None and result.ok and result.verified:
        pruned = prune(opts.state_dir, policy=policy, output=result.archive.parent)
        for item in pruned.removed:
            opts.note(f"backupkit: pruned {item.archive}")
        if result.remote is not None:
            # Only once the new copy is proven: a failed upload never thins the remote.
            remote_pruned = prune_remote(opts.state_dir, to, policy=policy)
            for item in remote_pruned.removed:
                opts.note(f"backupkit: pruned {item.archive}")
            for item in remote_pruned.locked:
                opts.note(f"backupkit: kept {item.archive}: {item.why[-1]}")
    if as_json:
        body = result.to_dict()
        if pruned is not None:
            body["pruned"] = [i.archive for i in pruned.removed]
        if remote_pruned is not None:
            body["pruned_remote"] = [i.archive for i in remote_pruned.removed]
        json_out(body)
    else:
        if result.archive.exists():
            click.echo(os.fspath(result.archive))
        if result.ok:
            opts.note(render.backup_summary(result))
        if result.remote is not None:
            opts.note(render.remote_copy_line(result.remote))
    if result.ok and result.remote_error is not None:
        raise result.remote_error
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


@cli.command(name="schedule", epilog=examples.epilog("schedule"))
@click.option("--systemd", is_flag=True, help="A service + timer pair (and an alert template).")
@click.option("--cron", is_flag=True, help="A crontab entry.")
@click.option("--install", is_flag=True, help="Write the units, or add the entry to your crontab.")
@click.option(
    "--uninstall", is_flag=True, help="Remove what --install wrote (nothing else is touched)."
)
@click.option("--dry-run", is_flag=True, help="With --install/--uninstall: show, change nothing.")
@click.option(
    "--user/--system",
    "user_scope",
    default=None,
    help="systemd: user units (~/.config/systemd/user) or system units (/etc/systemd/system); "
    "default: system for root, else user.",
)
@click.option(
    "--unit-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    metavar="DIR",
    help="systemd: install into DIR instead.",
)
@click.option(
    "--on-calendar",
    default="*-*-* 03:00:00",
    show_default=True,
    help="systemd OnCalendar= of the timer (checked with systemd-analyze where there is one).",
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
@no_workspaces_option
@exclude_option
@click.option("--compression", type=COMPRESSION_CHOICE, default=None, help=COMPRESSION_HELP)
@click.option("--prune", "prune_policy", metavar="POLICY", default=None, help=PRUNE_HELP)
@click.option(
    "--wait", type=click.FloatRange(min=0), default=3600, show_default=True, metavar="SECONDS"
)
@encrypt_options
@remote_options
@json_option
@click.pass_context
def schedule_cmd(
    ctx: click.Context,
    systemd: bool,
    cron: bool,
    install: bool,
    uninstall: bool,
    dry_run: bool,
    user_scope: bool | None,
    unit_dir: Path | None,
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
    encrypt_to: tuple[str, ...],
    recipients_file: Path | None,
    to: str | None,
    retention_days: int | None,
    as_json: bool,
) -> None:
    """Print, install or remove systemd units or a crontab entry that run `backup` on a
    timer."""
    opts: Options = ctx.obj
    _check_schedule_options(ctx, systemd, cron, install, uninstall, dry_run)
    state = existing_layout(opts.state_dir).state_dir
    scope: Scope = (
        "system" if (os.geteuid() == 0 if user_scope is None else not user_scope) else "user"
    )
    where = unit_dir if unit_dir is not None else default_unit_dir(scope)
    if uninstall:
        report = (
            uninstall_units(where, scope=scope, dry_run=dry_run)
            if systemd
            else uninstall_cron(state, dry_run=dry_run)
        )
        _show_schedule(opts, report, as_json)
        return
    args = _scheduled_backup_args(ctx.params)
    env = settings_from_environment()
    if systemd:
        check_calendar(on_calendar)
        check_timespan(randomized_delay)
        files = systemd_unit_files(
            state, args, on_calendar=on_calendar, randomized_delay=randomized_delay, env=env
        )
        if install:
            _show_schedule(opts, install_units(files, where, scope=scope, dry_run=dry_run), as_json)
            return
        text = systemd_units(
            state, args, on_calendar=on_calendar, randomized_delay=randomized_delay, env=env
        )
        printed: dict[str, Any] = {"files": [{"name": f.name, "content": f.text} for f in files]}
    else:
        hour, _, minute = at_time.partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            raise OptionError(f"--at {at_time!r}: write it as HH:MM")
        text = cron_line(state, args, minute=int(minute), hour=int(hour), env=env)
        if install:
            _show_schedule(opts, install_cron(state, text, dry_run=dry_run), as_json)
            return
        printed = {"crontab_entry": text}
    if as_json:
        kind = "systemd" if systemd else "cron"
        json_out({"ok": True, "kind": kind, "dry_run": False, **printed})
    else:
        click.echo(text, nl=False)


def _check_schedule_options(
    ctx: click.Context, systemd: bool, cron: bool, install: bool, uninstall: bool, dry_run: bool
) -> None:
    """Contradictions are refused (exit 2) rather than one side silently winning."""
    if systemd == cron:
        raise OptionError(
            "schedule needs one of --systemd or --cron"
            if not systemd
            else "--systemd and --cron contradict each other: choose one"
        )
    if install and uninstall:
        raise OptionError("--install and --uninstall contradict each other: choose one")
    if dry_run and not (install or uninstall):
        raise OptionError("--dry-run goes with --install or --uninstall")
    given = {
        name
        for name in ctx.params
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    only = (
        {"on_calendar": "--on-calendar", "randomized_delay": "--randomized-delay"}
        if cron
        else {"at_time": "--at"}
    )
    if cron:
        only |= {"user_scope": "--user/--system", "unit_dir": "--unit-dir"}
    for name, option in only.items():
        if name in given:
            kind, other = ("--cron", "--systemd") if cron else ("--systemd", "--cron")
            raise OptionError(f"{option} is for {other}, not {kind}")


def _scheduled_backup_args(p: dict[str, Any]) -> list[str]:
    """The `backup` arguments the timer runs with, from the schedule command's parameters
    (`p`, as click parsed them), checked now rather than at 3 a.m."""
    args: list[str] = ["--reason", p["reason"], "--wait", f"{p['wait']:g}"]
    if p["output"] is not None:
        args += ["--output", str(Path(os.path.abspath(p["output"])))]
    if p["no_workspaces"]:
        args.append("--no-workspaces")
    for glob in p["excludes"]:
        args += ["--exclude", glob]
    if p["compression"]:
        args += ["--compression", p["compression"]]
    if p["prune_policy"]:
        args += ["--prune", Policy.parse(p["prune_policy"]).describe()]
    encrypt_to, recipients_file = p["encrypt_to"], p["recipients_file"]
    if encrypt_to or recipients_file is not None:
        parse_recipients(encrypt_to, recipients_file)
    for recipient in encrypt_to:
        args += ["--encrypt-to", recipient.strip()]
    if recipients_file is not None:
        args += ["--recipients-file", os.path.abspath(recipients_file)]
    remote = remote_from(p["to"])  # $BACKUPKIT_REMOTE is written out: the timer has no shell
    if remote is not None:
        args += ["--to", remote.url]
    if p["retention_days"] is not None:
        if remote is None:
            raise OptionError("--retention-days locks a remote copy: give --to s3://BUCKET/PREFIX")
        args += ["--retention-days", str(p["retention_days"])]
    return args


def _show_schedule(opts: Options, report: ScheduleReport, as_json: bool) -> None:
    if as_json:
        json_out(report.to_dict())
        return
    click.echo(render.schedule_report(report))
    for warning in report.warnings:
        opts.note(f"backupkit: warning: {warning}")
