"""`verify`, `restore` and `show`: read an archive, check it, put it back."""

from __future__ import annotations

from pathlib import Path

import click

from ..archive.reader import read_manifest
from ..archive.source import as_ref
from ..errors import (
    IntegrityError,
)
from ..ops.refs import resolve_archive
from ..restore.run import restore_archive
from ..verify.verdict import verify_archive
from . import examples, render
from .app import Options, cli, json_out
from .options import encrypt_options, identity_option, json_option


@cli.command(epilog=examples.epilog("verify"))
@click.argument("archive", metavar="ARCHIVE")
@json_option
@click.option("--no-record", is_flag=True, help="Do not record the result in backup_runs.")
@identity_option
@click.pass_obj
def verify(
    opts: Options, archive: str, as_json: bool, no_record: bool, identity: Path | None
) -> None:
    """Prove an archive restorable; exit 1 on any defect."""
    path = resolve_archive(archive, opts.state_dir)
    with opts.progress() as progress:
        report = verify_archive(
            path,
            state_dir=opts.state_dir,
            record=not no_record,
            progress=progress,
            identity=identity,
        )
    if as_json:
        json_out(report.to_dict())
    else:
        for defect in report.defects:
            click.echo(f"defect: {defect}")
        for warning in report.warnings:
            opts.note(f"backupkit: warning: {warning}")
        click.echo(render.verify_line(report))
    if not report.ok:
        raise IntegrityError(f"archive {report.archive} failed verification: {report.defects[0]}")


@cli.command(epilog=examples.epilog("restore"))
@click.argument("archive", metavar="ARCHIVE")
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
@identity_option
@encrypt_options
@json_option
@click.pass_obj
def restore(
    opts: Options,
    archive: str,
    target: Path | None,
    in_place: bool,
    dry_run: bool,
    agents: tuple[str, ...],
    force: bool,
    output: Path | None,
    delete_extra: bool,
    from_other_state: bool,
    identity: Path | None,
    encrypt_to: tuple[str, ...],
    recipients_file: Path | None,
    as_json: bool,
) -> None:
    """Restore an archive into a fresh directory (--target) or over the live state (--in-place)."""
    path = resolve_archive(archive, opts.state_dir)
    with opts.progress() as progress:
        report = restore_archive(
            path,
            target=target,
            in_place=in_place,
            dry_run=dry_run,
            agents=list(agents) or None,
            force=force,
            state_dir=opts.state_dir,
            output=output,
            delete_extra=delete_extra,
            from_other_state=from_other_state,
            progress=progress,
            identity=identity,
            encrypt_to=encrypt_to,
            recipients_file=recipients_file,
        )
    if as_json:
        json_out(report.to_dict())
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


@cli.command(epilog=examples.epilog("show"))
@click.argument("archive", metavar="ARCHIVE")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as one JSON object.")
@identity_option
@click.pass_obj
def show(opts: Options, archive: str, as_json: bool, identity: Path | None) -> None:
    """Print an archive's manifest, readably."""
    path = resolve_archive(archive, opts.state_dir)
    manifest = read_manifest(path, identity=identity)
    if as_json:
        body = manifest.model_dump(mode="json")
        json_out({"ok": True, "archive": str(as_ref(path)), **body})
    else:
        click.echo(render.describe_manifest(manifest))
