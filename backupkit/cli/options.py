"""Options several commands share, defined once so their names and help cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

archive_dir_option = click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Archive directory (default: $BACKUPKIT_DIR, else <state dir>-backups).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
# What shapes a backup's contents, for `backup` and for the `schedule` that runs one.
no_workspaces_option = click.option(
    "--no-workspaces", is_flag=True, help="Leave workspace directories out."
)
exclude_option = click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="GLOB",
    help="Leave out paths matching GLOB (relative path or file name); repeatable.",
)
COMPRESSION_CHOICE = click.Choice(["fast", "default", "small"])
COMPRESSION_HELP = "zstd level: fast (1), default (3), small (9)."
PRUNE_HELP = "After a successful, verified backup, apply retention, e.g. daily=7,weekly=4."
identity_option = click.option(
    "--identity",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="age identity (or SSH private key) that opens an encrypted archive "
    "(default: $BACKUPKIT_IDENTITY_FILE).",
)


def encrypt_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--encrypt-to (repeatable) and --recipients-file: whom an archive is encrypted to."""
    f = click.option(
        "--recipients-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        metavar="FILE",
        help="Encrypt to the public keys in FILE, one per line "
        "(default: $BACKUPKIT_RECIPIENTS_FILE).",
    )(f)
    return click.option(
        "--encrypt-to",
        "encrypt_to",
        multiple=True,
        metavar="RECIPIENT",
        help="Encrypt the archive (age) to this public key: age1... or an SSH public key; "
        "repeatable.",
    )(f)


def remote_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--to and --retention-days: where a backup's offsite copy goes, and how long it is locked."""
    f = click.option(
        "--retention-days",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Lock the remote copy (S3 Object Lock, compliance mode) for N days.",
    )(f)
    return click.option(
        "--to",
        "to",
        metavar="s3://BUCKET/PREFIX",
        default=None,
        help="Upload the archive there and prove the copy (default: $BACKUPKIT_REMOTE).",
    )(f)


remote_option = click.option(
    "--remote",
    metavar="s3://BUCKET/PREFIX",
    default=None,
    help="Cover the remote copies there too (default: $BACKUPKIT_REMOTE).",
)

wait_option = click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Wait this long for another backup of the same state to finish.",
)
