"""`backup` and `schedule`: write archives now, or on a timer."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..archive.crypt import parse_recipients, resolve_recipients
from ..backup.pipeline import ALWAYS_VERIFIED_REASONS, create_backup
from ..backup.plan import plan_backup
from ..errors import (
    InputError,
    IntegrityError,
)
from ..ops.prune import prune
from ..ops.retention import Policy
from ..ops.schedule import cron_line, systemd_units
from ..state.layout import existing_layout, settings_from_environment
from . import render
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
)


@cli.command()
@archive_dir_option
@click.option("--reason", default="manual", show_default=True, help="Why this backup was taken.")
@no_workspaces_option
@exclude_option
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
        keys = resolve_recipients(encrypt_to, recipients_file)  # refused now, as a run would
        body = {**plan.to_dict(), "encrypted": keys is not None, "recipients": len(keys or ())}
        if as_json:
            json_out(body)
        else:
            click.echo(render.describe_plan(body))
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
        encrypt_to=encrypt_to,
        recipients_file=recipients_file,
        reuse=not full,
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
        json_out(body)
    else:
        if result.archive.exists():
            click.echo(os.fspath(result.archive))
        if result.ok:
            verified = "verified" if result.verified else "not verified (--no-verify)"
            if result.verified and result.manifest.encryption is not None:
                verified = "ciphertext verified (verify --identity checks the contents)"
            opts.note(
                f"backupkit: {len(result.manifest.databases)} databases, "
                f"{len(result.manifest.files)} files, {result.size_bytes} bytes, {verified}, "
                f"{result.seconds:.1f}s{render.encryption_note(result.manifest)}"
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
@no_workspaces_option
@exclude_option
@click.option("--compression", type=COMPRESSION_CHOICE, default=None, help=COMPRESSION_HELP)
@click.option("--prune", "prune_policy", metavar="POLICY", default=None, help=PRUNE_HELP)
@click.option(
    "--wait", type=click.FloatRange(min=0), default=3600, show_default=True, metavar="SECONDS"
)
@encrypt_options
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
    encrypt_to: tuple[str, ...],
    recipients_file: Path | None,
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
    if encrypt_to or recipients_file is not None:
        parse_recipients(encrypt_to, recipients_file)  # refused now, not at 3 a.m.
    for recipient in encrypt_to:
        args += ["--encrypt-to", recipient.strip()]
    if recipients_file is not None:
        args += ["--recipients-file", os.path.abspath(recipients_file)]
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
