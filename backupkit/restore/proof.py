"""Restore's precondition: the archive passes verify's streaming pass, or nothing is placed."""

from __future__ import annotations

from ..archive.crypt import Identities
from ..archive.source import ArchiveRef
from ..errors import IntegrityError
from ..progress import ProgressCallback
from ..verify.scan import MemberSink, ScanResult, scan_archive


def proven_scan(
    archive: ArchiveRef,
    progress: ProgressCallback | None,
    sink: MemberSink | None = None,
    identities: Identities | None = None,
) -> ScanResult:
    """Scan the archive (keeping its members in `sink`, if given); refuse it on any defect.
    Without a sink the databases are not opened here: each one is checked where it is placed,
    with the same check, after its bytes matched the manifest's sha256 on the way in."""
    result: ScanResult | None
    try:
        result = scan_archive(
            archive,
            progress=progress,
            check_databases=sink is not None,
            sink=sink,
            identities=identities,
        )
    except IntegrityError as err:
        defects, result = [str(err)], None
    else:
        defects = result.defects
    if defects or result is None:
        more = f" (+{len(defects) - 1} more)" if len(defects) > 1 else ""
        raise IntegrityError(
            f"archive {archive} failed verification, not restoring: {defects[0]}{more}"
        )
    return result
