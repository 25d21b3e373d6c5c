"""What each stage of a backup costs on its own, in CPU seconds, through backupkit's functions.

On a 2-core machine shared with other work, wall time says little about a single stage, but CPU
seconds (user + sys) are steady, and their sum divided by the cores is a lower bound on any
pipeline that does all the stages, however well it overlaps them.

- capture: backupkit's own `capture_database` on every database of the tree, as a backup calls
  it: checkpoint, `VACUUM INTO` a private snapshot, then the snapshot's `integrity_check`. Like
  every backup, it checkpoints the cached tree's WAL files.
- check: `check_database` (the one check capture, verify and restore run) on each snapshot
  (integrity, foreign keys, schema_meta),
  and the `integrity_check` alone through backupkit's snapshot connection, with and without the
  mmap that capture uses. These run inside capture and verify already, so they are shown, not
  added to the sums.
- hash, compress: sha256, and python-zstandard at backupkit's default level, over the snapshots.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard  # backupkit's own dependency, so it is in the venv

from ._backupkit import (
    DatabaseSource,
    capture_database,
    check_database,
    connect_snapshot,
    integrity_check,
)
from .files import remove
from .rounds import own_cpu_seconds
from .settings import MIB, ZSTD_LEVEL
from .trees import Tree

# The stages a backup runs one after the other for each database; the check rows are inside them.
SUMMED_STAGES = ("capture", "hash", "compress")


def database_sources(tree: Tree) -> list[DatabaseSource]:
    """The dry run's database entries, as the sources backupkit's capture takes."""
    return [
        DatabaseSource(
            path=Path(d["source_path"]),
            archive_path=d["archive_path"],
            role=d["role"],
            agent_id=d["agent_id"],
            found_by=d["found_by"],
            size_bytes=int(d["size_bytes"]),
        )
        for d in tree.databases
    ]


def _capture_all(sources: list[DatabaseSource], snap: Path) -> list[tuple[Path, str]]:
    remove(snap)
    snap.mkdir(parents=True)
    snaps = []
    for i, source in enumerate(sources):
        captured = capture_database(source, snap / f"{i:05d}.sqlite")
        if captured.integrity != "ok":
            print(f"      {source.archive_path}: {captured.integrity}", flush=True)
        if captured.captured_as == "snapshot":
            snaps.append((captured.file, source.archive_path))
    return snaps


def _verify_check_all(snaps: list[tuple[Path, str]]) -> None:
    for path, archive_path in snaps:
        check = check_database(path)
        if check.integrity != "ok":
            print(f"      {archive_path}: {check.integrity}", flush=True)


def _integrity_all(snaps: list[tuple[Path, str]], *, mmap: bool) -> None:
    for path, _name in snaps:
        conn = connect_snapshot(path, mmap=mmap)
        try:
            integrity_check(conn)
        finally:
            conn.close()


def _hash_all(snaps: list[tuple[Path, str]]) -> None:
    for path, _name in snaps:
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(MIB):
                digest.update(chunk)


def _compress_all(snaps: list[tuple[Path, str]], out: Path, threads: int, chunk: int) -> None:
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=threads, write_checksum=True)
    with open(out, "wb") as raw, cctx.stream_writer(raw, closefd=False) as writer:
        for path, _name in snaps:
            with open(path, "rb", buffering=0) as fh:
                while data := fh.read(chunk):
                    writer.write(data)
    out.unlink()


def bench_breakdown(tree: Tree, scratch_root: Path) -> list[dict[str, Any]]:
    """Run each stage once over the whole tree; the capture's snapshots feed the later stages."""
    scratch = scratch_root / "breakdown"
    remove(scratch)
    scratch.mkdir(parents=True)
    sources = database_sources(tree)
    snaps: list[tuple[Path, str]] = []

    def capture() -> None:
        snaps[:] = _capture_all(sources, scratch / "snap")

    z = scratch / "z"
    stages: list[tuple[str, str, Callable[[], None]]] = [
        ("capture", "capture_database (checkpoint, VACUUM INTO, check)", capture),
        ("check", "check_database (the one database check)", lambda: _verify_check_all(snaps)),
        (
            "check",
            "integrity_check alone, mmap (capture's)",
            lambda: _integrity_all(snaps, mmap=True),
        ),
        ("check", "integrity_check alone, no mmap", lambda: _integrity_all(snaps, mmap=False)),
        ("hash", "sha256, 1 MiB reads", lambda: _hash_all(snaps)),
        ("compress", "zstd -3, threads=-1, 1 MiB writes", lambda: _compress_all(snaps, z, -1, MIB)),
        (
            "compress",
            "zstd -3, threads=-1, 8 MiB writes",
            lambda: _compress_all(snaps, z, -1, 8 * MIB),
        ),
        ("compress", "zstd -3, threads=0 (one core)", lambda: _compress_all(snaps, z, 0, MIB)),
    ]
    rows: list[dict[str, Any]] = []
    try:
        for stage, label, fn in stages:
            print(f"    {stage}: {label}", flush=True)
            cpu0, wall0 = own_cpu_seconds(), time.perf_counter()
            fn()
            wall, cpu = time.perf_counter() - wall0, own_cpu_seconds() - cpu0
            rows.append(
                {
                    "stage": stage,
                    "variant": label,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "in_sum": stage in SUMMED_STAGES,
                }
            )
    finally:
        remove(scratch)
    return rows


def summarize(rows: list[dict[str, Any]], tree: Tree) -> dict[str, Any]:
    """Lower bounds for a pipeline: each summed stage's first variant ("defaults": what backupkit
    does, and zstd fed 1 MiB at a time like tarfile does) and its cheapest one."""
    cores = os.cpu_count() or 1
    first: dict[str, float] = {}
    best: dict[str, float] = {}
    for r in rows:
        if not r["in_sum"]:
            continue
        first.setdefault(r["stage"], r["cpu_s"])
        best[r["stage"]] = min(best.get(r["stage"], r["cpu_s"]), r["cpu_s"])
    now, tuned = sum(first.values()), sum(best.values())
    return {
        "tree": tree.spec.label,
        "stages": rows,
        "summed_stages": list(SUMMED_STAGES),
        "cpu_s_defaults": now,
        "cpu_s_cheapest": tuned,
        "cores": cores,
        "wall_lower_bound_defaults_s": now / cores,
        "wall_lower_bound_cheapest_s": tuned / cores,
    }
