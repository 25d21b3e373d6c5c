"""restic and borg, as an operator would run them on the same trees: local repositories,
compression on, the state dir and the external agent's directory as plain files.

Neither reads SQLite: they copy the live `.sqlite`, `-wal` and `-shm` files as they are, which
is not a consistent capture of a live database, and restoring needs their own tool. They are
here for what they do well: skip unchanged files and dedupe the rest.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .procs import child_env
from .trees import Tree

RESTIC_PASSWORD = "bench-only"


@dataclass(frozen=True)
class Peer:
    key: str  # restic, borg
    repo: Path
    env: dict[str, str]

    def init(self) -> None:
        """A fresh repository (untimed): a first backup must find nothing to dedupe against."""
        argv = (
            ["restic", "init", "--repo", str(self.repo), "--repository-version", "2"]
            if self.key == "restic"
            else ["borg", "init", "--encryption=none", str(self.repo)]
        )
        done = subprocess.run(argv, capture_output=True, text=True, env=self.environment())
        if done.returncode != 0:
            raise SystemExit(f"bench: {self.key} init failed: {done.stderr.strip()}")

    def environment(self) -> dict[str, str]:
        return {**child_env(), **self.env}

    def backup_argv(self, tree: Tree, name: str) -> list[str]:
        """The command line of one backup, with its settings in `env NAME=VALUE` form so that
        the timed command is self-contained."""
        sources = [str(p) for p in tree.inputs if p.exists()]
        settings = [f"{k}={v}" for k, v in self.env.items()]
        if self.key == "restic":
            run = ["restic", "--repo", str(self.repo), "--compression", "auto", "-q", "backup"]
            return ["env", *settings, *run, *sources]
        archive = f"{self.repo}::{name}"
        return ["env", *settings, "borg", "create", "--compression", "zstd,3", archive, *sources]


def available(key: str) -> bool:
    return shutil.which("borg" if key == "borg" else "restic") is not None


def peers(scratch: Path) -> list[Peer]:
    """Each installed peer with a repository and a cache of its own under `scratch`."""
    found = []
    if available("restic"):
        found.append(
            Peer(
                "restic",
                scratch / "restic-repo",
                {
                    "RESTIC_PASSWORD": RESTIC_PASSWORD,
                    "RESTIC_CACHE_DIR": str(scratch / "restic-cache"),
                },
            )
        )
    if available("borg"):
        found.append(
            Peer(
                "borg",
                scratch / "borg-repo",
                {
                    "BORG_BASE_DIR": str(scratch / "borg-home"),
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
                },
            )
        )
    return found
