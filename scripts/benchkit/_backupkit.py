"""Every backupkit internal the bench uses, imported here and nowhere else in benchkit.

The contenders run backupkit's public command line (`python -m backupkit`) in subprocesses; only
the stage breakdown and the default compression level reach inside the package. When backupkit's
modules move, this file is the one to change.
"""

from backupkit.archive.writer import COMPRESSION_LEVELS
from backupkit.backup.capture import capture_database
from backupkit.sqlite.check import check_database, integrity_check
from backupkit.sqlite.connect import connect_snapshot
from backupkit.state.discover import DatabaseSource

__all__ = [
    "COMPRESSION_LEVELS",
    "DatabaseSource",
    "capture_database",
    "check_database",
    "connect_snapshot",
    "integrity_check",
]
