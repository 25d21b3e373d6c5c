"""backupkit: backup, verify and restore the SQLite state of an OpenClaw gateway.

The library API (CONTRACT section 7). None of these functions print; pass `progress=` to follow
them.
"""

from .backup import BackupPlan, BackupResult, create_backup, plan_backup
from .errors import (
    BackupError,
    BusyError,
    EnvironmentFault,
    InputError,
    IntegrityError,
    Interrupted,
)
from .manifest import Manifest
from .progress import ProgressEvent
from .restore import RestoreReport, restore_archive
from .show import read_manifest
from .snapshot import SafetySnapshot, safety_snapshot
from .verify import VerifyReport, verify_archive
from .version import __version__

__all__ = [
    "BackupError",
    "BackupPlan",
    "BackupResult",
    "BusyError",
    "EnvironmentFault",
    "InputError",
    "IntegrityError",
    "Interrupted",
    "Manifest",
    "ProgressEvent",
    "RestoreReport",
    "SafetySnapshot",
    "VerifyReport",
    "__version__",
    "create_backup",
    "plan_backup",
    "read_manifest",
    "restore_archive",
    "safety_snapshot",
    "verify_archive",
]
