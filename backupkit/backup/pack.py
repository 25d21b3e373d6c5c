"""Pack the walked tree and each captured database into the archive, entry by entry.

A file that is gone when its turn comes is left out (`skipped`, reason `vanished`); one that
changes while it is read is kept as the bytes that were read (the manifest's size and sha256
are those of the bytes stored) and also listed (`skipped`, reason `changed`), so the operator
hears that it may mix old and new content. Neither fails the run: tar warns and goes on, and so
does a backup.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..archive.manifest import DatabaseEntry, DirectoryEntry, FileEntry, LinkEntry, SkippedEntry
from ..archive.writer import ArchiveWriter
from ..errors import EnvironmentFault, from_os_error
from ..progress import Meter
from ..state.discover import Inventory
from .capture import CapturedDatabase


@dataclass
class PackedTree:
    directories: list[DirectoryEntry] = field(default_factory=list)
    links: list[LinkEntry] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def vanished(self, path: os.PathLike[str] | str) -> None:
        self.skipped.append(SkippedEntry(source_path=os.fspath(path), reason="vanished"))
        self.warnings.append(f"{os.fspath(path)} vanished while the backup ran: left out")


def _lstat(path: os.PathLike[str], packed: PackedTree) -> os.stat_result | None:
    """The entry's own status, or None (and a `vanished` entry) for one that is gone."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        packed.vanished(path)
        return None
    except OSError as err:
        raise from_os_error(err, "reading the state") from err


def pack_tree(writer: ArchiveWriter, inv: Inventory, meter: Meter | None = None) -> PackedTree:
    """Pack directories, links and files; `meter` counts the bytes read, file by file."""
    packed = PackedTree()
    for d in inv.directories:
        if (st := _lstat(d.path, packed)) is None:
            continue
        writer.add_dir(d.archive_path, st, d.mode)
        packed.directories.append(
            DirectoryEntry(source_path=os.fspath(d.path), archive_path=d.archive_path, mode=d.mode)
        )
    for link in inv.links:
        if (st := _lstat(link.path, packed)) is None:
            continue
        writer.add_symlink(link.archive_path, link.target, st)
        packed.links.append(
            LinkEntry(
                source_path=os.fspath(link.path),
                archive_path=link.archive_path,
                target=link.target,
                outside_state_dir=link.outside_state_dir,
            )
        )
    for f in inv.files:
        on_bytes = _metered(meter, f.archive_path)
        try:
            written = writer.add_file(f.path, f.archive_path, on_bytes=on_bytes)
        except FileNotFoundError:
            if meter is not None:
                meter.end(f.archive_path, f.size_bytes)
            packed.vanished(f.path)
            continue
        if meter is not None:
            meter.end(f.archive_path, f.size_bytes)
        packed.files.append(
            FileEntry(
                kind=f.kind,
                source_path=os.fspath(f.path),
                archive_path=f.archive_path,
                size_bytes=written.size_bytes,
                sha256=written.sha256,
                mode=f.mode,
            )
        )
        if written.changed:
            packed.skipped.append(SkippedEntry(source_path=os.fspath(f.path), reason="changed"))
            packed.warnings.append(
                f"{os.fspath(f.path)} changed while it was read: kept as read, which may mix "
                "old and new content"
            )
    return packed


def _metered(meter: Meter | None, name: str) -> Callable[[int], None] | None:
    """The `on_bytes` hook that tells `meter` how far into `name` packing is."""
    if meter is None or not meter.active:
        return None
    meter.begin(name)
    return lambda n: meter.step(name, n)


@dataclass(frozen=True)
class PackedDatabase:
    """A database member and its entry; `frame` is the index of its own zstd frame (see
    `ArchiveWriter.frame`), which the entry learns once the frames are written."""

    entry: DatabaseEntry
    frame: int | None
    tar_bytes: int


def pack_database(
    writer: ArchiveWriter, captured: CapturedDatabase, meter: Meter | None = None
) -> PackedDatabase | None:
    """The captured database's member, in a zstd frame of its own so that a later backup can
    copy it; None for a raw copy whose file was gone by its turn. `meter` expected the live
    database's size: the snapshot's own replaces it."""
    name = captured.source.archive_path
    if meter is not None:
        meter.grow(captured.size_bytes - captured.source.size_bytes)
    try:
        written = writer.add_file(
            captured.file,
            name,
            mode=captured.mode,
            owner=captured.owner,
            on_bytes=_metered(meter, name),
            own_frames=True,
        )
    except FileNotFoundError:
        if meter is not None:
            meter.end(name, captured.size_bytes)
        if captured.captured_as == "snapshot":
            raise  # our own staging file: gone means something removed it under us
        return None
    if meter is not None:
        meter.end(name, captured.size_bytes)
    if written.size_bytes != captured.size_bytes and captured.captured_as == "snapshot":
        raise EnvironmentFault(f"snapshot of {captured.source.path} changed while being archived")
    entry = DatabaseEntry(
        role=captured.role,
        agent_id=captured.agent_id,
        schema_version=captured.schema_version,
        user_version=captured.user_version,
        source_path=os.fspath(captured.source.path),
        archive_path=captured.source.archive_path,
        size_bytes=written.size_bytes,
        sha256=written.sha256,
        integrity=captured.integrity,
        checkpoint=captured.checkpoint,
        journal_mode=captured.journal_mode,
        mode=captured.mode,
        captured_as=captured.captured_as,
        findings=captured.findings,
        source=captured.source_facts,
    )
    return PackedDatabase(entry, written.frame, written.tar_bytes)
