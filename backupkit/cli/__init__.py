"""The command line (`backupkit`, `python -m backupkit`): commands in app.py, text in render.py."""

from .app import cli, main

__all__ = ["cli", "main"]
