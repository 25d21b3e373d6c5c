"""`push`: upload an existing archive to a remote and prove the copy (docs/offsite.md)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..offsite.push import push_archive
from ..ops.refs import resolve_archive
from . import examples, render
from .app import Options, cli, json_out
from .options import json_option, remote_options, wait_option


@cli.command(name="push", epilog=examples.epilog("push"))
@click.argument("archive")
@remote_options
@wait_option
@json_option
@click.pass_obj
def push_cmd(
    opts: Options,
    archive: str,
    to: str | None,
    retention_days: int | None,
    wait: float,
    as_json: bool,
) -> None:
    """Upload ARCHIVE (a path, a backup id or `latest`) as PREFIX/<its name>, never over an
    existing object, and prove the copy before saying so."""
    ref = resolve_archive(archive, opts.state_dir)
    if not isinstance(ref, Path):
        raise InputError("push uploads a local archive: give a path, a backup id or `latest`")
    with opts.progress() as progress:
        report = push_archive(
            ref,
            to,
            state_dir=opts.state_dir,
            retention_days=retention_days,
            wait=wait,
            progress=progress,
        )
    for warning in report.warnings:
        opts.note(f"backupkit: warning: {warning}")
    if report.cleaned:
        opts.note(f"backupkit: aborted {len(report.cleaned)} unfinished upload(s) left earlier")
    if as_json:
        json_out(report.to_dict())
        return
    click.echo(report.copy.url)
    opts.note(render.remote_copy_line(report.copy))
