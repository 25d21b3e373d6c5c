"""Read an archive's manifest and describe it for people."""

from __future__ import annotations

import os
from pathlib import Path

from .archive_read import iter_members
from .errors import IntegrityError
from .manifest import MANIFEST_NAME, Manifest
from .verify import MAX_MANIFEST_BYTES, parse_manifest


def read_manifest(archive: str | os.PathLike[str]) -> Manifest:
    """Stream the archive up to its manifest (the last member) and parse it.

    This proves nothing about the other members; `verify` does.
    """
    for member, tar, _stream in iter_members(Path(archive)):
        if member.name == MANIFEST_NAME and member.isreg():
            if member.size > MAX_MANIFEST_BYTES:
                raise IntegrityError("manifest.json is implausibly large")
            fh = tar.extractfile(member)
            assert fh is not None
            return parse_manifest(fh.read())
    raise IntegrityError(f"archive {archive} has no manifest.json")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def describe_manifest(m: Manifest) -> str:
    lines = [
        f"backup {m.backup_id}",
        f"  created   {m.created_at}",
        f"  reason    {m.reason}",
        f"  state dir {m.state_dir}",
        f"  tool      backupkit {m.tool_version} (format {m.format_version})",
        "",
        f"databases ({len(m.databases)}):",
    ]
    for d in m.databases:
        agent = f" {d.agent_id}" if d.agent_id else ""
        version = f"schema {d.schema_version}" if d.schema_version is not None else "no schema_meta"
        lines.append(
            f"  {d.role:<6}{agent:<16} {_size(d.size_bytes):>10}  {version}, "
            f"user_version {d.user_version}, integrity {d.integrity}"
        )
        lines.append(f"         {d.source_path}")
    kinds: dict[str, tuple[int, int]] = {}
    for f in m.files:
        count, total = kinds.get(f.kind, (0, 0))
        kinds[f.kind] = (count + 1, total + f.size_bytes)
    lines.append(f"files ({len(m.files)}):")
    for kind, (count, total) in sorted(kinds.items()):
        lines.append(f"  {kind:<13} {count:>6} files {_size(total):>10}")
    outside = [link for link in m.links if link.outside_state_dir]
    lines.append(f"symlinks: {len(m.links)} ({len(outside)} pointing outside the state dir)")
    for link in outside:
        lines.append(f"  {link.source_path} -> {link.target}")
    reasons: dict[str, int] = {}
    for s in m.skipped:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    summary = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
    lines.append(f"skipped: {len(m.skipped)} ({summary})")
    return "\n".join(lines)
