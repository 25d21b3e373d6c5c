"""Timing contenders in alternating rounds, their medians, and how busy the machine was.

Every contender runs as its own subprocess under GNU `time -v` (for its peak RSS). All contenders
of a tree run back to back in each round, without sleeping, in ABBA order: every other round is
reversed, which cancels a linear drift and any position effect. Before and after each round the
bench reads /proc/loadavg and the machine's busy CPU time from /proc/stat; the busy time minus
the bench's own (its process and every contender it waited for) is what other processes used.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import remove, size_of
from .procs import child_env
from .settings import MIB, ROOT

# Fallback when GNU time is missing: one tiny wrapper process per run, because ru_maxrss of
# RUSAGE_CHILDREN is a maximum over every child the process ever waited for.
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.run(sys.argv[2:]).returncode\n"
    "with open(sys.argv[1], 'w') as fh:\n"
    "    fh.write(f'Maximum resident set size (kbytes): "
    "{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n')\n"
    "sys.exit(rc)\n"
)
GNU_TIME = Path("/usr/bin/time")
RSS_RE = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")


@functools.cache
def have_gnu_time() -> bool:
    # /usr/bin/time may be a BSD or BusyBox time without -v and -o: try it once.
    try:
        probe = subprocess.run(
            [str(GNU_TIME), "-v", "-o", os.devnull, "true"], capture_output=True, check=False
        )
    except OSError:
        return False
    return probe.returncode == 0


@dataclass
class Contender:
    key: str
    label: str
    group: str  # "backup" or "verify": which baseline its ratios are taken against
    argv: list[str]
    outputs: list[Path]  # removed before and after each run, to keep disk use bounded
    backupkit: bool = False  # the peak-RSS target applies
    times: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    out_bytes: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def peak_rss_mb(self) -> float | None:
        return max(self.rss_kb) / 1024 if self.rss_kb else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def paired_ratio(a: Contender, b: Contender) -> float | None:
    """Median of per-round ratios: runs of the same round saw the same machine state."""
    pairs = [x / y for x, y in zip(a.times, b.times, strict=False) if y > 0]
    return statistics.median(pairs) if pairs and len(a.times) == len(b.times) else None


# ------------------------------------------------------------------------------------------
# How busy the machine was
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSample:
    at: float  # time.perf_counter()
    loadavg: tuple[float, float, float]
    busy_cpu_s: float | None  # every process on the machine, from /proc/stat; None if unknown
    own_cpu_s: float  # this process and every child it has waited for
    # Time the hypervisor gave this VM's CPUs to others (counted in busy_cpu_s too).
    steal_cpu_s: float | None = None


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy, stolen) CPU seconds of the whole machine so far."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        # cpu user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
        # already counted in user.
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
        tick = os.sysconf("SC_CLK_TCK")
        return (user + nice + system + irq + softirq + steal) / tick, steal / tick
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def sample_load() -> LoadSample:
    cpu = _cpu_seconds()
    busy, steal = cpu if cpu is not None else (None, None)
    return LoadSample(time.perf_counter(), os.getloadavg(), busy, own_cpu_seconds(), steal)


def load_between(before: LoadSample, after: LoadSample) -> dict[str, Any]:
    """What the rest of the machine did between two samples: CPU seconds and average cores."""
    wall = after.at - before.at
    own = after.own_cpu_s - before.own_cpu_s
    other = None
    if before.busy_cpu_s is not None and after.busy_cpu_s is not None:
        # /proc/stat counts in clock ticks (10 ms): never report less than nothing.
        other = max(0.0, after.busy_cpu_s - before.busy_cpu_s - own)
    return {
        "wall_s": wall,
        "loadavg_before": list(before.loadavg),
        "loadavg_after": list(after.loadavg),
        "own_cpu_s": own,
        "other_cpu_s": other,
        "other_cores": other / wall if other is not None and wall > 0 else None,
        "steal_cores": (after.steal_cpu_s - before.steal_cpu_s) / wall
        if after.steal_cpu_s is not None and before.steal_cpu_s is not None and wall > 0
        else None,
    }


def describe_load(load: dict[str, Any]) -> str:
    """One line: the load average before and after, and the cores other processes kept busy."""
    text = f"load {load['loadavg_before'][0]:.2f} -> {load['loadavg_after'][0]:.2f}"
    if load["other_cpu_s"] is None:
        return text + ", CPU time of other processes unknown (no /proc/stat)"
    steal = load.get("steal_cores")
    stolen = f", steal {steal:.2f} cores" if steal is not None else ""
    return (
        f"{text}, other processes used {load['other_cores']:.2f} cores "
        f"({load['other_cpu_s']:.1f} CPU-s in {load['wall_s']:.1f} s){stolen}"
    )


# ------------------------------------------------------------------------------------------
# Rounds
# ------------------------------------------------------------------------------------------


def run_once(c: Contender, rss_file: Path) -> None:
    for out in c.outputs:
        remove(out)
    remove(rss_file)
    if have_gnu_time():
        cmd = [str(GNU_TIME), "-v", "-o", str(rss_file), *c.argv]
    else:
        cmd = [sys.executable, "-c", RSS_WRAPPER, str(rss_file), *c.argv]
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
        env=child_env(),
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        c.failures.append(f"exit {proc.returncode}: {lines[-1] if lines else '(no message)'}")
        print(f"    {c.key}: FAILED ({c.failures[-1]})", flush=True)
    else:
        c.times.append(elapsed)
        with contextlib.suppress(OSError):
            match = RSS_RE.search(rss_file.read_text())
            if match:
                c.rss_kb.append(int(match.group(1)))
        if c.group == "backup" and c.outputs:
            c.out_bytes.append(size_of(c.outputs[0]))
        print(f"    {c.key:<22} {elapsed:7.2f} s", flush=True)
    for out in c.outputs:
        remove(out)


def warm_cache(paths: Iterable[Path]) -> None:
    """Read the inputs once, so that the first contender of round 1 is not the only cold one."""
    buf = bytearray(4 * MIB)
    for top in paths:
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                p = os.path.join(dirpath, name)
                with contextlib.suppress(OSError), open(p, "rb", buffering=0) as fh:
                    while fh.readinto(buf):
                        pass


class LoadLog:
    """How busy the machine was in each round and over all of them."""

    def __init__(self) -> None:
        self._first = self._before = sample_load()
        self._rounds: list[dict[str, Any]] = []

    def round_done(self, number: int) -> None:
        after = sample_load()
        load = load_between(self._before, after)
        print(f"    machine: {describe_load(load)}", flush=True)
        self._rounds.append({"round": number, **load})
        self._before = after

    def summary(self) -> dict[str, Any]:
        return {**load_between(self._first, self._before), "rounds": self._rounds}


def abba(contenders: list[Contender], round_index: int) -> list[Contender]:
    """Reversing every other round cancels a linear drift and any position effect."""
    return contenders if round_index % 2 == 0 else list(reversed(contenders))


def run_rounds(contenders: list[Contender], rounds: int, rss_file: Path) -> dict[str, Any]:
    """Time every contender once per round; return how busy the machine was meanwhile."""
    log = LoadLog()
    for r in range(rounds):
        print(f"  round {r + 1}/{rounds}", flush=True)
        for c in abba(contenders, r):
            run_once(c, rss_file)
        log.round_done(r + 1)
    return log.summary()
