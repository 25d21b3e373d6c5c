"""`key new`: make an age identity for encrypted archives (docs/encryption.md)."""

from __future__ import annotations

from pathlib import Path

import click

from ..archive.crypt import new_identity
from . import examples
from .app import Options, cli, json_out
from .options import json_option


@cli.group(name="key", epilog=examples.epilog("key"))
def key_group() -> None:
    """Identities (secret keys) for encrypted archives."""


@key_group.command(name="new", epilog=examples.epilog("key new"))
@click.argument("file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False))
@json_option
@click.pass_obj
def key_new(opts: Options, file: Path, as_json: bool) -> None:
    """Write a new age identity to FILE (0600, never over an existing file) and print its
    recipient, the public key to pass to `backup --encrypt-to`."""
    made = new_identity(file)
    if as_json:
        json_out(made.to_dict())
        return
    click.echo(made.recipient)
    opts.note(
        f"backupkit: identity written to {made.path} (mode 0600). Keep it off the gateway and "
        "in a safe place: without it no archive encrypted to this recipient can be restored."
    )
