"""Compare what the stream held with what the manifest says: exactly the listed members, each
the size, sha256, type and link text listed, every database faithful to its entry."""

from __future__ import annotations

from dataclasses import dataclass

from ..archive.manifest import Manifest
from ..archive.policy import sidecars, under_symlink
from ..sqlite.check import DatabaseCheck, archive_defects


@dataclass
class Seen:
    """One member as the stream held it."""

    kind: str  # file, dir, symlink
    size: int = 0
    sha256: str = ""
    mode: int = 0
    linkname: str = ""
    owner: tuple[int, int] = (0, 0)


def compare(
    manifest: Manifest, seen: dict[str, Seen], checks: dict[str, DatabaseCheck], *, checked: bool
) -> list[str]:
    """Every way the archive differs from its manifest. `checked` says whether the databases
    were opened (a caller that checks them where it places them passes False)."""
    defects: list[str] = []
    listed: set[str] = set()

    def expect_file(name: str, size: int, sha: str) -> bool:
        listed.add(name)
        got = seen.get(name)
        if got is None or got.kind != "file":
            defects.append(f"{name}: listed in the manifest but missing from the archive")
        elif got.size != size:
            defects.append(f"{name}: size {got.size} does not match the manifest's {size}")
        elif got.sha256 != sha:
            defects.append(f"{name}: sha256 does not match the manifest")
        else:
            return True
        return False

    for db in manifest.databases:
        if not expect_file(db.archive_path, db.size_bytes, db.sha256) or not checked:
            continue
        if db.integrity != "ok":
            continue  # kept as the bytes it was at the source: its sha256 is the whole proof
        check = checks.get(db.archive_path)
        if check is None:
            defects.append(f"{db.archive_path}: is not a SQLite database")
            continue
        defects += archive_defects(db, check)
    for f in manifest.files:
        expect_file(f.archive_path, f.size_bytes, f.sha256)
    for link in manifest.links:
        listed.add(link.archive_path)
        got = seen.get(link.archive_path)
        if got is None or got.kind != "symlink" or got.linkname != link.target:
            defects.append(
                f"{link.archive_path}: symlink missing or pointing elsewhere than listed"
            )
    for d in manifest.directories:
        listed.add(d.archive_path)
        got = seen.get(d.archive_path)
        if got is None or got.kind != "dir":
            defects.append(f"{d.archive_path}: directory listed in the manifest is missing")
    for name in seen:
        if name not in listed:
            defects.append(f"{name}: in the archive but not in the manifest")
    for name in sidecars(seen, {d.archive_path for d in manifest.databases}):
        defects.append(f"member {name!r} is a SQLite sidecar, which an archive must never hold")
    links = {n for n, s in seen.items() if s.kind == "symlink"}
    for name, link_name in under_symlink(seen, links).items():
        defects.append(f"{name}: lies under the symlink {link_name}")
    return defects
