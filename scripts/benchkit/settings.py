"""Where the bench keeps its files, the units it reports in, and the defaults of a run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._backupkit import COMPRESSION_LEVELS

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_BENCH_DIR = ROOT / ".bench"

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000  # throughput is reported in decimal MB/s, like disk and network figures

DEFAULT_SIZE_GIB = 2.0
# + global, quarantine and foreign databases = 43, like the reference gateway's 41+
DEFAULT_AGENTS = 40
DEFAULT_ROUNDS = 3
QUICK_SIZE_GIB = 200 / 1024
# --smoke: every part of a run in a few seconds, on trees too small for the timings to mean much.
SMOKE_SIZE_GIB = 8 / 1024
SMOKE_AGENTS = 8
MANY_AGENTS = 1000
MANY_BYTES_PER_AGENT = 1 * MIB
SMOKE_MANY_AGENTS = 40
SMOKE_MANY_BYTES_PER_AGENT = 64 * KIB
FEW_AGENTS = 8  # the four special agents of the fixture plus four ordinary ones
# The naive pipeline and the floor compress at backupkit's default level.
ZSTD_LEVEL = COMPRESSION_LEVELS["default"]
FREE_SPACE_FACTOR_BUILD = 3  # tree + one set of snapshots + archives
FREE_SPACE_FACTOR_RUN = 2  # snapshots for the floor + archives, the tree already exists


@dataclass(frozen=True)
class Paths:
    """Everything a run writes lives under one directory (`.bench/` in the checkout)."""

    bench: Path

    @property
    def trees(self) -> Path:
        return self.bench / "trees"

    @property
    def scratch(self) -> Path:
        return self.bench / "run"

    @property
    def lock(self) -> Path:
        return self.bench / "bench.lock"

    @property
    def default_json(self) -> Path:
        return self.bench / "results.json"


def shown(path: Path) -> str:
    """A path as the operator would type it: relative to the checkout when inside it."""
    try:
        return os.fspath(path.relative_to(ROOT))
    except ValueError:
        return os.fspath(path)


def human(n: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 1024:.0f} KiB"


def round_size(n: int) -> str:
    """A size that is a whole number of MiB or KiB, as in a tree's label: 1 MiB, 64 KiB."""
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n // KIB} KiB"
