"""What each stage of a backup costs on its own, in CPU seconds.

On a 2-core machine shared with other work, wall time says little about a single stage, but CPU
seconds (user + sys) are steady, and their sum divided by the cores is a lower bound on any
pipeline that does all the stages, however well it overlaps them. Each later stage reads the
snapshots the capture wrote.
"""

from __future__ import annotations

import hashlib
import os
import resource
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zstandard  # backupkit's own dependency, so it is in the venv

from .files import remove
from .settings import MIB, ZSTD_LEVEL
from .trees import Tree

MMAP_BYTES = 0x7FFF0000  # the largest mmap_size the stock SQLite builds accept


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _vacuum_all(sources: list[Path], snap: Path, pragmas: Sequence[str]) -> None:
    remove(snap)
    snap.mkdir(parents=True)
    for i, src in enumerate(sources):
        # Read-only: the bench must not checkpoint or otherwise change the cached tree here.
        conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            for pragma in pragmas:
                conn.execute(pragma)
            conn.execute("VACUUM INTO ?", (str(snap / f"{i:05d}.sqlite"),))
        finally:
            conn.close()


def _check_all(snaps: list[Path], pragmas: Sequence[str]) -> None:
    for path in snaps:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            for pragma in pragmas:
                conn.execute(pragma)
            conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()


def _hash_all(snaps: list[Path]) -> None:
    for path in snaps:
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as fh:
            while chunk := fh.read(MIB):
                digest.update(chunk)


def _compress_all(snaps: list[Path], out: Path, threads: int, chunk: int) -> None:
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=threads, write_checksum=True)
    with open(out, "wb") as raw, cctx.stream_writer(raw, closefd=False) as writer:
        for path in snaps:
            with open(path, "rb", buffering=0) as fh:
                while data := fh.read(chunk):
                    writer.write(data)
    out.unlink()


def bench_breakdown(tree: Tree, scratch_root: Path) -> list[dict[str, Any]]:
    scratch = scratch_root / "breakdown"
    remove(scratch)
    scratch.mkdir(parents=True)
    sources = [Path(d["source_path"]) for d in tree.databases]
    snap = scratch / "snap"
    tuned = ["PRAGMA synchronous=OFF", f"PRAGMA mmap_size={MMAP_BYTES}"]
    snaps: list[Path] = []  # filled by each capture stage, read by the later stages
    stages: list[tuple[str, str, Any]] = [
        ("capture", "VACUUM INTO, SQLite defaults", lambda: _vacuum_all(sources, snap, [])),
        (
            "capture",
            "VACUUM INTO, synchronous=OFF",
            lambda: _vacuum_all(sources, snap, tuned[:1]),
        ),
        (
            "capture",
            "VACUUM INTO, synchronous=OFF + mmap_size",
            lambda: _vacuum_all(sources, snap, tuned),
        ),
        ("check", "integrity_check, SQLite defaults", lambda: _check_all(snaps, [])),
        ("check", "integrity_check, mmap_size", lambda: _check_all(snaps, tuned[1:])),
        ("hash", "sha256, 1 MiB reads", lambda: _hash_all(snaps)),
        (
            "compress",
            "zstd -3, threads=-1, 1 MiB writes",
            lambda: _compress_all(snaps, scratch / "z", -1, MIB),
        ),
        (
            "compress",
            "zstd -3, threads=-1, 8 MiB writes",
            lambda: _compress_all(snaps, scratch / "z", -1, 8 * MIB),
        ),
        (
            "compress",
            "zstd -3, threads=0 (one core)",
            lambda: _compress_all(snaps, scratch / "z", 0, MIB),
        ),
    ]
    rows: list[dict[str, Any]] = []
    for stage, label, fn in stages:
        print(f"    {stage}: {label}", flush=True)
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
        if stage == "capture":
            snaps = sorted(snap.glob("*.sqlite"))
        rows.append({"stage": stage, "variant": label, "wall_s": wall, "cpu_s": cpu})
    remove(scratch)
    return rows


def summarize(rows: list[dict[str, Any]], tree: Tree) -> dict[str, Any]:
    """Lower bounds for a pipeline: each stage's first variant ("defaults": SQLite's defaults,
    zstd fed 1 MiB at a time like tarfile does) and the cheapest variant measured."""
    cores = os.cpu_count() or 1
    first: dict[str, float] = {}
    best: dict[str, float] = {}
    for r in rows:
        first.setdefault(r["stage"], r["cpu_s"])
        best[r["stage"]] = min(best.get(r["stage"], r["cpu_s"]), r["cpu_s"])
    now, tuned = sum(first.values()), sum(best.values())
    return {
        "tree": tree.spec.label,
        "stages": rows,
        "cpu_s_defaults": now,
        "cpu_s_cheapest": tuned,
        "cores": cores,
        "wall_lower_bound_defaults_s": now / cores,
        "wall_lower_bound_cheapest_s": tuned / cores,
    }
