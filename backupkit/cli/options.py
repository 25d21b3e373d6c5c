"""Options several commands share, defined once so their names and help cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import click

archive_dir_option = click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Archive directory (default: $BACKUPKIT_DIR, else <state dir>-backups).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
