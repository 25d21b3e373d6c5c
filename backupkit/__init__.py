"""backupkit: backup, verify and restore the SQLite state of an OpenClaw gateway.

The library API (README, "Python API"). None of these functions print; pass `progress=` to
follow them.
"""

from .archive.crypt import Identities, NewIdentity, Recipients, load_identities, new_identity
from .archive.manifest import Manifest
from .archive.reader import read_manifest
from .backup.pipeline import BackupResult, create_backup
from .backup.plan import BackupPlan, plan_backup
from .errors import (
    BackupError,
    BusyError,
    EnvironmentFault,
    InputError,
    IntegrityError,
    Interrupted,
)
from .offsite.catalog import RemoteCatalogue, list_remote
from .offsite.prune import RemotePruneReport, prune_remote
from .offsite.push import PushReport, push_archive
from .offsite.upload import RemoteCopy
from .ops.catalog import Catalogue, list_archives
from .ops.prune import PruneReport, prune
from .ops.retention import Policy
from .ops.snapshot import SafetySnapshot, safety_snapshot
from .ops.status import StatusReport, backup_status
from .progress import ProgressEvent
from .restore.plan import RestoreReport
from .restore.run import restore_archive
from .verify.verdict import VerifyReport, verify_archive
from .version import __version__

__all__ = [
    "BackupError",
    "BackupPlan",
    "BackupResult",
    "BusyError",
    "Catalogue",
    "EnvironmentFault",
    "Identities",
    "InputError",
    "IntegrityError",
    "Interrupted",
    "Manifest",
    "NewIdentity",
    "Policy",
    "ProgressEvent",
    "PruneReport",
    "PushReport",
    "Recipients",
    "RemoteCatalogue",
    "RemoteCopy",
    "RemotePruneReport",
    "RestoreReport",
    "SafetySnapshot",
    "StatusReport",
    "VerifyReport",
    "__version__",
    "backup_status",
    "create_backup",
    "list_archives",
    "list_remote",
    "load_identities",
    "new_identity",
    "plan_backup",
    "prune",
    "prune_remote",
    "push_archive",
    "read_manifest",
    "restore_archive",
    "safety_snapshot",
    "verify_archive",
]
