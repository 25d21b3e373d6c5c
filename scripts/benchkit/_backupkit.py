"""Every backupkit internal the bench uses, imported here and nowhere else in benchkit.

The contenders run backupkit's public command line (`python -m backupkit`) in subprocesses; only
the stage breakdown and the default compression level reach inside the package. When backupkit's
modules move, this file is the one to change.
"""

from backupkit.capture import capture_database
from backupkit.discover import DatabaseSource
from backupkit.pack import COMPRESSION_LEVELS
from backupkit.sqlite_files import connect_snapshot, integrity_check
from backupkit.verify import check_database_file

__all__ = [
    "COMPRESSION_LEVELS",
    "DatabaseSource",
    "capture_database",
    "check_database_file",
    "connect_snapshot",
    "integrity_check",
]
