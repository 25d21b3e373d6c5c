"""The naive pipelines, written as shell scripts so that they are exactly what an operator
would type: the sqlite3 CLI, GNU tar and the zstd CLI."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path

from .settings import ZSTD_LEVEL
from .trees import Tree

# What the naive tar must leave out of the live state dir: the databases (their snapshots are
# archived instead) and the sidecars backupkit skips too.
NAIVE_EXCLUDES = (
    "*.sqlite",
    "*.sqlite-wal",
    "*.sqlite-shm",
    "*.sqlite-journal",
    "*.sock",
    "*.pid",
    "*.lock",
)


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def capture_script(tree: Tree, snap: Path) -> list[str]:
    """`VACUUM INTO` each database in turn, at its archive path under `snap`."""
    lines = [f"mkdir -p {shlex.quote(str(snap))}"]
    parents = sorted({str((snap / d["archive_path"]).parent) for d in tree.databases})
    lines += [f"mkdir -p {shlex.quote(p)}" for p in parents]
    for d in tree.databases:
        dest = str(snap / d["archive_path"])
        sql = f"VACUUM INTO {sql_string(dest)}"
        lines.append(f"sqlite3 {shlex.quote(d['source_path'])} {shlex.quote(sql)}")
    return lines


def pack_script(tree: Tree, snap: Path, out: Path) -> list[str]:
    """tar the snapshots plus the state dir's other files, through `zstd -T0 -3`.

    GNU tar applies `--exclude` only to the operands after it, so the snapshots (named
    `*.sqlite` too) go first and the live state dir, minus its databases and sidecars, after.
    """
    tops = sorted({d["archive_path"].split("/", 1)[0] for d in tree.databases})
    excludes = " ".join(f"--exclude={shlex.quote(p)}" for p in NAIVE_EXCLUDES)
    return [
        f"tar -cf - -C {shlex.quote(str(snap))} "
        + " ".join(shlex.quote(f"./{t}") for t in tops)
        + f" {excludes} -C {shlex.quote(str(tree.state_dir.parent))} "
        + shlex.quote(tree.state_dir.name)
        + f" | zstd -T0 -{ZSTD_LEVEL} -q -o {shlex.quote(str(out))}"
    ]


def naive_verify_script(tree: Tree, archive: Path, dest: Path) -> list[str]:
    """Extract with stock tools, then `PRAGMA integrity_check` each database with the CLI."""
    lines = [
        f"mkdir -p {shlex.quote(str(dest))}",
        f"zstd -dc -q {shlex.quote(str(archive))} | tar -x -C {shlex.quote(str(dest))}",
    ]
    for d in tree.databases:
        db = shlex.quote(str(dest / d["archive_path"]))
        lines.append(
            f'r=$(sqlite3 {db} "PRAGMA integrity_check"); '
            f'[ "$r" = ok ] || {{ echo "{d["archive_path"]}: $r" >&2; exit 1; }}'
        )
    return lines


def write_script(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("set -euo pipefail\n" + "\n".join(lines) + "\n")
    return path


def bash(path: Path, lines: Iterable[str]) -> list[str]:
    """The command line that runs `lines`, written to `path` as a script."""
    return ["bash", str(write_script(path, lines))]
