"""The command line (`backupkit`, `python -m backupkit`): the group and shared helpers in app.py,
the commands in cmd_*.py, the error edge in main.py, all human text in render.py."""

from .app import cli
from .main import main

__all__ = ["cli", "main"]
