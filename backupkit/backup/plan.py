"""`backup --dry-run`: what a backup would capture, found without writing anything."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..state.discover import Inventory, discover
from ..state.layout import existing_layout, resolve_output_dir


@dataclass
class BackupPlan:
    """What a backup would capture; nothing was written to produce it."""

    state_dir: Path
    output_dir: Path
    inventory: Inventory

    def to_dict(self) -> dict[str, Any]:
        inv = self.inventory
        return {
            "ok": True,
            "dry_run": True,
            "state_dir": os.fspath(self.state_dir),
            "output_dir": os.fspath(self.output_dir),
            "databases": [
                {
                    "role": d.role,
                    "agent_id": d.agent_id,
                    "source_path": os.fspath(d.path),
                    "archive_path": d.archive_path,
                    "size_bytes": d.size_bytes,
                    "found_by": d.found_by,
                }
                for d in inv.databases
            ],
            "files": [
                {
                    "kind": f.kind,
                    "source_path": os.fspath(f.path),
                    "archive_path": f.archive_path,
                    "size_bytes": f.size_bytes,
                    "mode": f.mode,
                }
                for f in inv.files
            ],
            "links": [
                {
                    "source_path": os.fspath(link.path),
                    "target": link.target,
                    "outside_state_dir": link.outside_state_dir,
                }
                for link in inv.links
            ],
            "skipped": [s.model_dump() for s in inv.skipped],
            "notes": list(inv.notes),
            "input_bytes": inv.total_bytes,
        }


def plan_backup(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    include_workspaces: bool = True,
    excludes: tuple[str, ...] = (),
) -> BackupPlan:
    layout = existing_layout(state_dir)
    out = resolve_output_dir(output, layout.state_dir)
    inv = discover(layout, include_workspaces=include_workspaces, excludes=excludes)
    return BackupPlan(state_dir=layout.state_dir, output_dir=out, inventory=inv)
