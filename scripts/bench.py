"""Benchmark backupkit against the baselines of issue 7, in the same run, on cached fixtures.

Timings on the project's machines drift by up to 40 % between runs and the page cache is
evicted after about 30 s idle, so absolute seconds mean little: every contender runs as its own
subprocess, all contenders of a tree alternate within each round (ABBA order, which also cancels
a linear drift), back to back without sleeping, and only medians and ratios against baselines
measured in the same rounds are reported. The issue-7 targets are printed as PASS/MISS: this is a
measurement, never a test, and the exit code does not depend on it.

Fixture trees are built once with `fixtures.build_state` and cached under `.bench/trees/`, keyed
by their parameters and by a hash of the generator's source, so a changed generator rebuilds.

Run it through `scripts/bench` (which sets up the venv); see docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import resource
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# scripts/ is sys.path[0] when run as a script; the fixtures package lives at the repo root.
sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / ".bench"
TREES_DIR = BENCH_DIR / "trees"
SCRATCH_DIR = BENCH_DIR / "run"
DEFAULT_JSON = BENCH_DIR / "results.json"

MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000  # throughput is reported in decimal MB/s, like disk and network figures

DEFAULT_AGENTS = 40  # + global, quarantine and foreign databases = 43, like the issue's 41+
QUICK_SIZE_GIB = 200 / 1024
MANY_AGENTS = 1000
MANY_BYTES_PER_AGENT = 1 * MIB
FEW_AGENTS = 8  # the four special agents of the fixture plus four ordinary ones
ZSTD_LEVEL = 3  # the naive pipeline and the floor use backupkit's default level
FREE_SPACE_FACTOR_BUILD = 3  # tree + one set of snapshots + archives
FREE_SPACE_FACTOR_RUN = 2  # snapshots for the floor + archives, the tree already exists

# Issue-7 targets. Ratios are against contenders measured in the same rounds.
TARGET_BACKUP_VS_NAIVE = 0.40
TARGET_BACKUP_VS_FLOOR = 1.15
TARGET_VERIFY_VS_NAIVE = 0.80
TARGET_RESTORE_VS_NAIVE = 1.00
TARGET_PEAK_RSS_MB = 150.0
TARGET_LINEARITY = 0.15
TARGET_MS_PER_DATABASE = 15.0

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


# ------------------------------------------------------------------------------------------
# Fixture trees
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeSpec:
    label: str
    agents: int
    bytes_per_agent: int
    seed: int = 0

    @property
    def key(self) -> str:
        return f"a{self.agents}-b{self.bytes_per_agent}-s{self.seed}"

    @property
    def nominal_bytes(self) -> int:
        return self.agents * self.bytes_per_agent


@dataclass
class Tree:
    spec: TreeSpec
    state_dir: Path
    databases: list[dict[str, Any]]
    state_bytes: int
    global_db: Path | None

    @property
    def gib(self) -> float:
        return self.state_bytes / GIB


def fixture_hash() -> str:
    """A cached tree is only reused if the generator that built it has not changed."""
    digest = hashlib.sha256()
    for name in ("state.py", "wal_writer.py"):
        digest.update((ROOT / "fixtures" / name).read_bytes())
    return digest.hexdigest()[:16]


def code_hash() -> str:
    """The backupkit sources under test: others may edit them while a long run goes on."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "backupkit").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def human(n: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n / 1024:.0f} KiB"


def tree_is_cached(spec: TreeSpec, want_hash: str) -> bool:
    marker = TREES_DIR / spec.key / "complete.json"
    try:
        return json.loads(marker.read_text()).get("fixture_hash") == want_hash
    except (OSError, ValueError):
        return False


def ensure_tree(spec: TreeSpec, want_hash: str) -> Path:
    """Build the tree unless a complete one with the same parameters and generator exists."""
    from fixtures import build_state

    home = TREES_DIR / spec.key
    state = home / "state"
    if tree_is_cached(spec, want_hash):
        print(f"using cached tree {home.relative_to(ROOT)} ({spec.label})", flush=True)
        return state
    # A half-built or outdated tree: start over. build_state records absolute paths (the
    # external agent database), so the tree is built where it will stay, not renamed into place.
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    print(
        f"building tree {home.relative_to(ROOT)}: {spec.agents} agents x "
        f"{human(spec.bytes_per_agent)} ...",
        flush=True,
    )
    started = time.perf_counter()
    # No socket: the naive tar would warn about it, and backupkit only lists it as skipped.
    build_state(
        state,
        agents=spec.agents,
        bytes_per_agent=spec.bytes_per_agent,
        seed=spec.seed,
        with_socket=False,
    )
    (home / "complete.json").write_text(
        json.dumps(
            {
                "fixture_hash": want_hash,
                "agents": spec.agents,
                "bytes_per_agent": spec.bytes_per_agent,
                "seed": spec.seed,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "build_seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    return state


def check_space(specs: Sequence[TreeSpec], want_hash: str) -> list[str]:
    """Refuse before building anything rather than fill the disk half way through a run."""
    problems = []
    free = free_bytes(BENCH_DIR)
    need_build = sum(
        spec.nominal_bytes * FREE_SPACE_FACTOR_BUILD
        for spec in specs
        if not tree_is_cached(spec, want_hash)
    )
    need_run = max((spec.nominal_bytes * FREE_SPACE_FACTOR_RUN for spec in specs), default=0)
    need = max(need_build, need_run)
    if free < need:
        problems.append(
            f"not enough free disk under {BENCH_DIR}: {human(free)} free, {human(need)} needed "
            f"({FREE_SPACE_FACTOR_BUILD}x each tree to build, {FREE_SPACE_FACTOR_RUN}x the "
            "largest to run); free some space or choose smaller --sizes"
        )
    return problems


def child_env() -> dict[str, str]:
    # The bench names every path itself: an operator's OpenClaw or backupkit settings in the
    # environment must not redirect the contenders to a real state dir.
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENCLAW_", "BACKUPKIT_")) and k != "PYTHONPROFILEIMPORTTIME"
    }


def backupkit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "backupkit", *args]


def describe_tree(state: Path, spec: TreeSpec) -> Tree:
    """Ask backupkit what it would capture, once and outside any timing."""
    out = subprocess.run(
        backupkit_cmd(
            "--state-dir",
            str(state),
            "-q",
            "backup",
            "--dry-run",
            "--json",
            "--output",
            str(SCRATCH_DIR / "dry-run"),
        ),
        capture_output=True,
        check=False,
        env=child_env(),
        cwd=ROOT,
    )
    if out.returncode != 0:
        raise SystemExit(f"bench: backupkit --dry-run failed: {out.stderr.decode().strip()}")
    plan = json.loads(out.stdout)
    databases = plan["databases"]
    global_db = next((Path(d["source_path"]) for d in databases if d["role"] == "global"), None)
    return Tree(spec, state, databases, int(plan["total_bytes"]), global_db)


def ledger_ids(global_db: Path | None) -> set[str] | None:
    if global_db is None:
        return None
    try:
        conn = sqlite3.connect(f"file:{global_db}?mode=ro", uri=True)
        try:
            return {row[0] for row in conn.execute("SELECT id FROM backup_runs")}
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def forget_bench_runs(global_db: Path | None, keep: set[str] | None) -> None:
    """Drop the backup_runs rows the bench's own backups added, so the cache stays as built."""
    if global_db is None or keep is None:
        return
    try:
        conn = sqlite3.connect(global_db)
        try:
            with conn:
                conn.execute("CREATE TEMP TABLE keep_ids (id TEXT PRIMARY KEY)")
                conn.executemany("INSERT INTO keep_ids VALUES (?)", [(i,) for i in keep])
                conn.execute("DELETE FROM backup_runs WHERE id NOT IN (SELECT id FROM keep_ids)")
        finally:
            conn.close()
    except sqlite3.Error as err:
        print(f"bench: warning: could not tidy backup_runs in {global_db}: {err}", flush=True)


# ------------------------------------------------------------------------------------------
# The naive pipelines, written as shell scripts so that they are exactly what an operator
# would type: the sqlite3 CLI, GNU tar and the zstd CLI.
# ------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------
# Contenders and measurement
# ------------------------------------------------------------------------------------------


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


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


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


def run_rounds(contenders: list[Contender], rounds: int, rss_file: Path) -> None:
    for r in range(rounds):
        # ABBA: reversing every other round cancels a linear drift and any position effect.
        order = contenders if r % 2 == 0 else list(reversed(contenders))
        print(f"  round {r + 1}/{rounds}", flush=True)
        for c in order:
            run_once(c, rss_file)


def restore_available() -> bool:
    probe = subprocess.run(
        backupkit_cmd("restore", "--help"),
        capture_output=True,
        check=False,
        env=child_env(),
        cwd=ROOT,
    )
    return probe.returncode == 0


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def paired_ratio(a: Contender, b: Contender) -> float | None:
    """Median of per-round ratios: runs of the same round saw the same machine state."""
    pairs = [x / y for x, y in zip(a.times, b.times, strict=False) if y > 0]
    return statistics.median(pairs) if pairs and len(a.times) == len(b.times) else None


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "PASS" if value <= limit else "MISS"


@dataclass
class TreeResult:
    tree: Tree
    rounds: int
    contenders: list[Contender]
    targets: list[dict[str, Any]]


def bench_tree(tree: Tree, rounds: int, with_restore: bool) -> TreeResult:
    scratch = SCRATCH_DIR / tree.spec.key
    remove(scratch)
    scratch.mkdir(parents=True)
    state = str(tree.state_dir)
    bk_out = scratch / "bk-out"

    naive = Contender(
        "naive",
        "naive backup (sqlite3 VACUUM INTO each, tar | zstd)",
        "backup",
        [
            "bash",
            str(
                write_script(
                    scratch / "naive-backup.sh",
                    capture_script(tree, scratch / "naive-snap")
                    + pack_script(tree, scratch / "naive-snap", scratch / "naive.tar.zst"),
                )
            ),
        ],
        [scratch / "naive.tar.zst", scratch / "naive-snap"],
    )
    floor_snap = scratch / "floor-snap"
    floor = Contender(
        "floor",
        "compression floor (tar | zstd over snapshots)",
        "backup",
        [
            "bash",
            str(
                write_script(
                    scratch / "floor.sh",
                    pack_script(tree, floor_snap, scratch / "floor.tar.zst"),
                )
            ),
        ],
        [scratch / "floor.tar.zst"],
    )
    bk_args = ["--state-dir", state, "-q", "backup", "--output", str(bk_out)]
    contenders = [
        naive,
        floor,
        Contender(
            "backupkit",
            "backupkit backup --no-verify",
            "backup",
            backupkit_cmd(*bk_args, "--no-verify"),
            [bk_out],
            backupkit=True,
        ),
        Contender(
            "backupkit+verify",
            "backupkit backup (verify on, the default)",
            "backup",
            backupkit_cmd(*bk_args),
            [bk_out],
            backupkit=True,
        ),
        Contender(
            "backupkit-fast",
            "backupkit backup --compression fast --no-verify",
            "backup",
            backupkit_cmd(*bk_args, "--compression", "fast", "--no-verify"),
            [bk_out],
            backupkit=True,
        ),
    ]

    # Both verifiers read the same archive, written once by backupkit (stock tools read it).
    print("  preparing: snapshots for the floor, one archive for the verifiers", flush=True)
    prep = subprocess.run(
        ["bash", str(write_script(scratch / "floor-prep.sh", capture_script(tree, floor_snap)))],
        capture_output=True,
        check=False,
        env=child_env(),
    )
    if prep.returncode != 0:
        raise SystemExit(f"bench: preparing snapshots failed: {prep.stderr.decode().strip()}")
    verify_in = scratch / "verify-input"
    prep = subprocess.run(
        backupkit_cmd(
            "--state-dir", state, "-q", "backup", "--output", str(verify_in), "--no-verify"
        ),
        capture_output=True,
        check=False,
        env=child_env(),
        cwd=ROOT,
    )
    archives = sorted(verify_in.glob("*.tar.zst"))
    if prep.returncode != 0 or len(archives) != 1:
        raise SystemExit(f"bench: preparing the verify archive failed: {prep.stderr.decode()}")
    archive = archives[0]
    naive_verify = Contender(
        "naive-verify",
        "naive verify (zstd -dc | tar -x, sqlite3 integrity_check)",
        "verify",
        [
            "bash",
            str(
                write_script(
                    scratch / "naive-verify.sh",
                    naive_verify_script(tree, archive, scratch / "naive-extract"),
                )
            ),
        ],
        [scratch / "naive-extract"],
    )
    contenders += [
        naive_verify,
        Contender(
            "backupkit-verify",
            "backupkit verify --no-record",
            "verify",
            backupkit_cmd("--state-dir", state, "-q", "verify", str(archive), "--no-record"),
            [],
            backupkit=True,
        ),
    ]
    if with_restore:
        target = scratch / "restore-target"
        contenders.append(
            Contender(
                "backupkit-restore",
                "backupkit restore --target (vs naive verify)",
                "verify",
                backupkit_cmd(
                    "--state-dir", state, "-q", "restore", str(archive), "--target", str(target)
                ),
                [target],
                backupkit=True,
            )
        )

    warm_cache([tree.state_dir, tree.state_dir.parent / f"{tree.state_dir.name}-external"])
    warm_cache([verify_in, floor_snap])
    run_rounds(contenders, rounds, scratch / "rss.txt")
    remove(scratch)
    return TreeResult(tree, rounds, contenders, tree_targets(contenders))


def tree_targets(contenders: list[Contender]) -> list[dict[str, Any]]:
    by = {c.key: c for c in contenders}
    naive, floor = by["naive"].median, by["floor"].median
    targets: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, unit: str = "x") -> None:
        targets.append(
            {
                "target": name,
                "measured": value,
                "limit": limit,
                "unit": unit,
                "result": verdict(value, limit),
            }
        )

    for key in ("backupkit", "backupkit+verify"):
        m = by[key].median
        add(f"{key} <= {TARGET_BACKUP_VS_NAIVE} x naive", ratio(m, naive), TARGET_BACKUP_VS_NAIVE)
        add(f"{key} <= {TARGET_BACKUP_VS_FLOOR} x floor", ratio(m, floor), TARGET_BACKUP_VS_FLOOR)
    nv = by["naive-verify"].median
    add(
        f"backupkit verify <= {TARGET_VERIFY_VS_NAIVE} x naive verify",
        ratio(by["backupkit-verify"].median, nv),
        TARGET_VERIFY_VS_NAIVE,
    )
    if "backupkit-restore" in by:
        add(
            f"backupkit restore <= {TARGET_RESTORE_VS_NAIVE} x naive extract+check",
            ratio(by["backupkit-restore"].median, nv),
            TARGET_RESTORE_VS_NAIVE,
        )
    for c in contenders:
        if c.backupkit:
            name = f"{c.key} peak RSS <= {TARGET_PEAK_RSS_MB:.0f} MB"
            add(name, c.peak_rss_mb, TARGET_PEAK_RSS_MB, "MB")
    return targets


# ------------------------------------------------------------------------------------------
# Per-database cost: 1,000 small databases against the same bytes in a few large ones
# ------------------------------------------------------------------------------------------


def bench_per_database(many: Tree, few: Tree, rounds: int) -> dict[str, Any]:
    scratch = SCRATCH_DIR / "per-database"
    remove(scratch)
    scratch.mkdir(parents=True)
    contenders: list[Contender] = []
    for tag, tree in (("many", many), ("few", few)):
        snap, out = scratch / f"{tag}-snap", scratch / f"{tag}.tar.zst"
        script = write_script(
            scratch / f"naive-{tag}.sh",
            capture_script(tree, snap) + pack_script(tree, snap, out),
        )
        contenders.append(
            Contender(
                f"naive@{tag}", f"naive backup, {tag}", "backup", ["bash", str(script)], [out, snap]
            )
        )
        bk_out = scratch / f"bk-{tag}"
        contenders.append(
            Contender(
                f"backupkit@{tag}",
                f"backupkit backup --no-verify, {tag}",
                "backup",
                backupkit_cmd(
                    "--state-dir",
                    str(tree.state_dir),
                    "-q",
                    "backup",
                    "--output",
                    str(bk_out),
                    "--no-verify",
                ),
                [bk_out],
                backupkit=True,
            )
        )
    for tree in (many, few):
        warm_cache([tree.state_dir, tree.state_dir.parent / f"{tree.state_dir.name}-external"])
    run_rounds(contenders, rounds, scratch / "rss.txt")
    remove(scratch)
    by = {c.key: c for c in contenders}
    extra_dbs = len(many.databases) - len(few.databases)
    result: dict[str, Any] = {
        "many": tree_summary(many),
        "few": tree_summary(few),
        "rounds": rounds,
        "contenders": [
            contender_summary(c, None, None, (many if c.key.endswith("@many") else few).state_bytes)
            for c in contenders
        ],
    }
    for tool in ("naive", "backupkit"):
        t_many, t_few = by[f"{tool}@many"].median, by[f"{tool}@few"].median
        added = None
        if t_many is not None and t_few is not None and extra_dbs > 0:
            # The two trees hold almost, not exactly, the same bytes: scale the few-database
            # time to the many-database tree's bytes before taking the difference.
            scaled = t_few * many.state_bytes / few.state_bytes
            added = (t_many - scaled) / extra_dbs * 1000
        result[f"{tool}_added_ms_per_database"] = added
    value = result["backupkit_added_ms_per_database"]
    result["target"] = {
        "target": f"backupkit adds <= {TARGET_MS_PER_DATABASE:.0f} ms per database",
        "measured": value,
        "limit": TARGET_MS_PER_DATABASE,
        "unit": "ms",
        "result": verdict(value, TARGET_MS_PER_DATABASE),
    }
    return result


# ------------------------------------------------------------------------------------------
# Breakdown: what each stage of a backup costs on its own, in CPU seconds
# ------------------------------------------------------------------------------------------

# On a 2-core machine shared with other work, wall time says little about a single stage, but
# CPU seconds (user + sys) are steady, and their sum divided by the cores is a lower bound on any
# pipeline that does all the stages, however well it overlaps them.
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
    import zstandard  # backupkit's own dependency, so it is in the venv

    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=threads, write_checksum=True)
    with open(out, "wb") as raw, cctx.stream_writer(raw, closefd=False) as writer:
        for path in snaps:
            with open(path, "rb", buffering=0) as fh:
                while data := fh.read(chunk):
                    writer.write(data)
    out.unlink()


def bench_breakdown(tree: Tree) -> list[dict[str, Any]]:
    scratch = SCRATCH_DIR / "breakdown"
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


def print_breakdown(rows: list[dict[str, Any]], tree: Tree) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    # "defaults" takes each stage's first variant (SQLite's defaults, zstd fed 1 MiB at a time
    # like tarfile does), "cheapest" the best variant measured: a floor for any pipeline.
    first: dict[str, float] = {}
    best: dict[str, float] = {}
    for r in rows:
        first.setdefault(r["stage"], r["cpu_s"])
        best[r["stage"]] = min(best.get(r["stage"], r["cpu_s"]), r["cpu_s"])
    now, tuned = sum(first.values()), sum(best.values())
    print()
    print(f"== stage costs on the {tree.spec.label} (CPU seconds are steadier than wall time):")
    for r in rows:
        print(f"  {r['stage']:<9} {r['variant']:<42} {r['cpu_s']:6.2f} CPU-s  {r['wall_s']:6.2f} s")
    print(
        f"  sum of stages with defaults: {now:.1f} CPU-s, so at least {now / cores:.1f} s on "
        f"{cores} cores; with the cheapest variants: {tuned:.1f} CPU-s, at least "
        f"{tuned / cores:.1f} s"
    )
    return {
        "tree": tree.spec.label,
        "stages": rows,
        "cpu_s_defaults": now,
        "cpu_s_cheapest": tuned,
        "cores": cores,
        "wall_lower_bound_defaults_s": now / cores,
        "wall_lower_bound_cheapest_s": tuned / cores,
    }


# ------------------------------------------------------------------------------------------
# The gateway's view: commit latency while a backup runs
# ------------------------------------------------------------------------------------------

WRITER_INTERVAL_S = 0.002  # one commit every 2 ms per database, like a busy gateway
WRITER_BUSY_TIMEOUT_MS = 30_000  # what the gateway gives its own writes
WRITER_STALL_LIMIT_MS = 100.0
PROBE_TABLE = "bench_writer_probe"


class _Writer:
    """Commits one row at a time to a live database in WAL mode and records each commit's
    latency (BEGIN IMMEDIATE to COMMIT), as the gateway's own writes would see it."""

    def __init__(self, label: str, db: Path) -> None:
        self.label = label
        self.db = db
        self.latencies_ms: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{label}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None, timeout=WRITER_BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (at REAL, pad BLOB)")
            pad = os.urandom(256)
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(f"INSERT INTO {PROBE_TABLE} VALUES (?, ?)", (time.time(), pad))
                    conn.execute("COMMIT")
                except sqlite3.Error as err:
                    self.failures.append(str(err))
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                self.latencies_ms.append((time.perf_counter() - t0) * 1000)
                self._stop.wait(WRITER_INTERVAL_S)
            conn.execute(f"DROP TABLE {PROBE_TABLE}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

        return {
            "writer_on": self.label,
            "database": os.fspath(self.db),
            "commits": len(lat),
            "failed": len(self.failures),
            "first_failure": self.failures[0] if self.failures else None,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": lat[-1] if lat else None,
        }


def bench_writer(tree: Tree) -> dict[str, Any]:
    """Time commits to the global database and to one agent database during a default backup
    (verify on), the way the gateway would see them."""
    agent = next((Path(d["source_path"]) for d in tree.databases if d["role"] == "agent"), None)
    targets = [("global database", tree.global_db), ("an agent database", agent)]
    writers = [_Writer(label, db) for label, db in targets if db is not None]
    out = SCRATCH_DIR / "writer-out"
    remove(out)
    for w in writers:
        w.start()
    time.sleep(0.5)  # commits before the backup starts, as a baseline
    started = time.perf_counter()
    proc = subprocess.run(
        backupkit_cmd("--state-dir", str(tree.state_dir), "-q", "backup", "--output", str(out)),
        capture_output=True,
        text=True,
        check=False,
    )
    backup_s = time.perf_counter() - started
    time.sleep(0.5)
    for w in writers:
        w.stop()
    remove(out)
    rows = [w.summary() for w in writers]
    worst = max((r["max_ms"] or 0.0) for r in rows) if rows else None
    failed = sum(r["failed"] for r in rows)
    stall = {
        "target": f"writer: no failed commit, no stall > {WRITER_STALL_LIMIT_MS:.0f} ms",
        "measured": worst,
        "limit": WRITER_STALL_LIMIT_MS,
        "unit": "ms",
        "result": "MISS"
        if failed or proc.returncode != 0
        else verdict(worst, WRITER_STALL_LIMIT_MS),
    }
    return {
        "tree": tree.spec.label,
        "backup_exit": proc.returncode,
        "backup_s": backup_s,
        "writers": rows,
        "target": stall,
    }


def print_writer(result: dict[str, Any]) -> None:
    print()
    print(
        f"== gateway writers during a default backup of the {result['tree']} "
        f"({result['backup_s']:.1f} s, exit {result['backup_exit']}):"
    )
    heads = ("commits", "failed", "p50 ms", "p99 ms", "max ms")
    print(f"  {'writer on':<20} " + " ".join(f"{h:>8}" for h in heads))
    for r in result["writers"]:
        print(
            f"  {r['writer_on']:<20} {r['commits']:>8} {r['failed']:>8} "
            f"{fmt(r['p50_ms'], '8.2f')} {fmt(r['p99_ms'], '8.2f')} {fmt(r['max_ms'], '8.1f')}"
        )
        if r["first_failure"]:
            print(f"    first failure: {r['first_failure']}")
    print_targets([result["target"]])


# ------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------


def tool_version(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def machine_info() -> dict[str, Any]:
    cpu_model = None
    mem_total = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
    zstd_cli = tool_version(["zstd", "--version"]) or ""
    match = re.search(r"v(\d+\.\d+\.\d+)", zstd_cli)
    commit = tool_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = tool_version(["git", "-C", str(ROOT), "status", "--porcelain", "--", "backupkit"])
    versions: dict[str, str | None] = {}
    for dist in ("backupkit", "zstandard"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    sqlite_cli = tool_version(["sqlite3", "--version"])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_bytes": mem_total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite_python": sqlite3.sqlite_version,
        "sqlite_cli": sqlite_cli.split()[0] if sqlite_cli else None,
        "zstd_cli": match.group(1) if match else None,
        "zstandard_python": versions["zstandard"],
        "tar": tool_version(["tar", "--version"]),
        "backupkit": versions["backupkit"],
        "git_commit": commit,
        # Others edit backupkit/ concurrently: say whether the measured code was committed.
        "backupkit_tree_dirty": bool(dirty),
        "backupkit_code_hash": code_hash(),
        "peak_rss_via": "GNU time -v" if have_gnu_time() else "getrusage wrapper",
        # Other work on the machine skews timings: the load says how quiet the run was.
        "loadavg_start": list(os.getloadavg()),
    }


def tree_summary(tree: Tree) -> dict[str, Any]:
    return {
        "label": tree.spec.label,
        "agents": tree.spec.agents,
        "bytes_per_agent": tree.spec.bytes_per_agent,
        "seed": tree.spec.seed,
        "databases": len(tree.databases),
        "state_bytes": tree.state_bytes,
        "path": os.fspath(tree.state_dir),
    }


def contender_summary(
    c: Contender, naive: Contender | None, floor: Contender | None, state_bytes: int
) -> dict[str, Any]:
    m = c.median
    return {
        "key": c.key,
        "label": c.label,
        "group": c.group,
        "command": shlex.join(c.argv),
        "times_s": [round(t, 3) for t in c.times],
        "median_s": round(m, 3) if m is not None else None,
        "ratio_vs_naive": ratio(m, naive.median) if naive else None,
        "ratio_vs_naive_paired": paired_ratio(c, naive) if naive else None,
        "ratio_vs_floor": ratio(m, floor.median) if floor else None,
        "mb_per_s": state_bytes / MB / m if m else None,
        "peak_rss_mb": c.peak_rss_mb,
        "output_bytes": statistics.median(c.out_bytes) if c.out_bytes else None,
        "failures": c.failures,
    }


def fmt(value: float | None, spec: str) -> str:
    if value is None:
        # Keep the column aligned: pad the dash to the width the spec asks for.
        width = re.match(r"\d*", spec)
        return "-".rjust(int(width.group()) if width and width.group() else 0)
    return format(value, spec)


def print_tree(result: TreeResult) -> list[dict[str, Any]]:
    tree = result.tree
    by = {c.key: c for c in result.contenders}
    rows = []
    print()
    print(
        f"== {tree.spec.label}: {len(tree.databases)} databases, {tree.state_bytes / MB:,.0f} MB "
        f"of state ({tree.spec.agents} agents x {human(tree.spec.bytes_per_agent)}), "
        f"median of {result.rounds} round(s)"
    )
    header = (
        f"{'contender':<58} {'median s':>9} {'vs naive':>9} {'vs floor':>9} "
        f"{'MB/s':>7} {'peak RSS MB':>12}"
    )
    print(header)
    print("-" * len(header))
    for c in result.contenders:
        base = by["naive"] if c.group == "backup" else by["naive-verify"]
        floor = by["floor"] if c.group == "backup" else None
        row = contender_summary(c, base, floor, tree.state_bytes)
        rows.append(row)
        failed = f"  ({len(c.failures)} failed)" if c.failures else ""
        print(
            f"{c.label:<58} {fmt(row['median_s'], '9.2f')} "
            f"{fmt(row['ratio_vs_naive'], '9.2f')} {fmt(row['ratio_vs_floor'], '9.2f')} "
            f"{fmt(row['mb_per_s'], '7.0f')} {fmt(row['peak_rss_mb'], '12.0f')}{failed}"
        )
    print("('vs naive' is against naive backup for backups, naive verify for verify/restore)")
    print_targets(result.targets)
    return rows


def print_targets(targets: list[dict[str, Any]]) -> None:
    print("issue-7 targets (a measurement in this run, not a test):")
    for t in targets:
        value = "-" if t["measured"] is None else f"{t['measured']:.2f} {t['unit']}"
        print(f"  {t['target']:<52} {value:>12}  {t['result']}")


def linearity(results: list[TreeResult]) -> dict[str, Any] | None:
    """Seconds per GiB of backupkit across sizes; each size ran in its own rounds."""
    points = []
    for r in results:
        c = next(c for c in r.contenders if c.key == "backupkit")
        naive = next(c for c in r.contenders if c.key == "naive")
        if c.median is not None:
            points.append(
                {
                    "label": r.tree.spec.label,
                    "gib": r.tree.gib,
                    "s_per_gib": c.median / r.tree.gib,
                    "naive_s_per_gib": naive.median / r.tree.gib if naive.median else None,
                    "ratio_vs_naive": ratio(c.median, naive.median),
                }
            )
    if len(points) < 2:
        return None
    rates = [p["s_per_gib"] for p in points]
    spread = max(rates) / min(rates) - 1
    return {
        "points": points,
        "spread": spread,
        "target": {
            "target": f"backupkit s/GiB within {TARGET_LINEARITY:.0%} across sizes",
            "measured": spread,
            "limit": TARGET_LINEARITY,
            "unit": "spread",
            "result": verdict(spread, TARGET_LINEARITY),
        },
    }


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[float]:
    try:
        sizes = [float(s) for s in text.split(",") if s.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--sizes wants GiB numbers like 0.5,2,8: {err}") from err
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("--sizes wants positive GiB numbers like 0.5,2,8")
    return sizes


def size_label(gib: float) -> str:
    return f"{gib * 1024:.0f} MiB tree" if gib < 1 else f"{gib:g} GiB tree"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Time backupkit against a naive shell pipeline and the compression floor, "
        "in the same rounds, on cached fixture trees.",
    )
    parser.add_argument(
        "--sizes", type=parse_sizes, default=None, help="tree sizes in GiB (default 2)"
    )
    parser.add_argument(
        "--agents", type=int, default=DEFAULT_AGENTS, help="agents per sized tree (default 40)"
    )
    parser.add_argument(
        "--agents1000",
        action="store_true",
        help="also time 1,000 agents x 1 MiB against the same bytes in a few databases",
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one 200 MiB tree, one round"
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure each backup stage's CPU cost alone, on the first tree",
    )
    parser.add_argument(
        "--no-writer",
        action="store_true",
        help="skip timing a gateway writer's commits during a backup of the first tree",
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or ([QUICK_SIZE_GIB] if args.quick else [2.0])
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if rounds < 1 or args.agents < 1:
        parser.error("--rounds and --agents must be at least 1")
    for tool in ("sqlite3", "zstd", "tar", "bash"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH (scripts/bench installs it)")

    specs = [TreeSpec(size_label(s), args.agents, int(s * GIB) // args.agents) for s in sizes]
    per_db_specs: list[TreeSpec] = []
    if args.agents1000:
        many_bytes = MANY_AGENTS * MANY_BYTES_PER_AGENT
        per_db_specs = [
            TreeSpec("1,000 agents x 1 MiB", MANY_AGENTS, MANY_BYTES_PER_AGENT),
            TreeSpec(f"{FEW_AGENTS} agents, same bytes", FEW_AGENTS, many_bytes // FEW_AGENTS),
        ]
    want_hash = fixture_hash()
    problems = check_space(specs + per_db_specs, want_hash)
    if problems:
        for p in problems:
            print(f"bench: {p}", file=sys.stderr)
        return 2

    BENCH_DIR.mkdir(exist_ok=True)
    # Two benches at once would delete each other's scratch and skew each other's timings.
    lock_fd = os.open(BENCH_DIR / "bench.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("bench: another scripts/bench is running on this checkout", file=sys.stderr)
        return 3
    remove(SCRATCH_DIR)
    SCRATCH_DIR.mkdir(parents=True)
    with_restore = restore_available()
    report: dict[str, Any] = {
        "machine": machine_info(),
        "params": {
            "sizes_gib": sizes,
            "agents": args.agents,
            "rounds": rounds,
            "quick": args.quick,
            "zstd_level": ZSTD_LEVEL,
            "restore_benched": with_restore,
        },
        "trees": [],
    }
    m = report["machine"]
    print(
        f"bench: {m['cpu_count']} cores ({m['cpu_model']}), Python {m['python']}, "
        f"sqlite {m['sqlite_python']}, zstd {m['zstd_cli']}, backupkit {m['backupkit']} "
        f"@ {m['git_commit']}{' (uncommitted changes)' if m['backupkit_tree_dirty'] else ''}, "
        f"load {m['loadavg_start'][0]:.1f}",
        flush=True,
    )
    if not with_restore:
        print("bench: `backupkit restore` is not available yet: restore is not timed", flush=True)

    results: list[TreeResult] = []
    try:
        for spec in specs:
            state = ensure_tree(spec, want_hash)
            tree = describe_tree(state, spec)
            keep = ledger_ids(tree.global_db)
            print(f"timing {spec.label} ({len(tree.databases)} databases)", flush=True)
            try:
                result = bench_tree(tree, rounds, with_restore)
            finally:
                forget_bench_runs(tree.global_db, keep)
            results.append(result)
            rows = print_tree(result)
            report["trees"].append(
                {
                    **tree_summary(tree),
                    "rounds": rounds,
                    "contenders": rows,
                    "targets": result.targets,
                }
            )
        if results and not args.no_writer:
            first = results[0].tree
            keep = ledger_ids(first.global_db)
            print(f"timing gateway writers during a backup of the {first.spec.label}", flush=True)
            try:
                report["writer"] = bench_writer(first)
            finally:
                forget_bench_runs(first.global_db, keep)
            print_writer(report["writer"])
        if args.breakdown and results:
            print(f"measuring stage costs on the {results[0].tree.spec.label}", flush=True)
            rows = bench_breakdown(results[0].tree)
            report["breakdown"] = print_breakdown(rows, results[0].tree)
        lin = linearity(results)
        if lin is not None:
            report["linearity"] = lin
            print()
            print("cost per GiB (backupkit --no-verify; each size ran in its own rounds):")
            for p in lin["points"]:
                print(
                    f"  {p['label']:<16} {p['s_per_gib']:6.2f} s/GiB  "
                    f"(naive {fmt(p['naive_s_per_gib'], '.2f')} s/GiB, "
                    f"ratio {fmt(p['ratio_vs_naive'], '.2f')})"
                )
            print_targets([lin["target"]])
        if per_db_specs:
            many, few = (describe_tree(ensure_tree(s, want_hash), s) for s in per_db_specs)
            keeps = [(t.global_db, ledger_ids(t.global_db)) for t in (many, few)]
            print(
                f"timing per-database cost: {len(many.databases)} vs {len(few.databases)} "
                "databases",
                flush=True,
            )
            try:
                per_db = bench_per_database(many, few, rounds)
            finally:
                for db, keep in keeps:
                    forget_bench_runs(db, keep)
            report["per_database"] = per_db
            print()
            print(
                f"== per-database cost: {len(many.databases)} databases "
                f"({many.state_bytes / MB:,.0f} MB) vs {len(few.databases)} databases "
                f"({few.state_bytes / MB:,.0f} MB), median of {rounds} round(s)"
            )
            for c in per_db["contenders"]:
                print(f"  {c['label']:<40} {fmt(c['median_s'], '8.2f')} s")
            print(
                "  added ms per database: naive "
                f"{fmt(per_db['naive_added_ms_per_database'], '.1f')}, backupkit "
                f"{fmt(per_db['backupkit_added_ms_per_database'], '.1f')}"
            )
            print_targets([per_db["target"]])
    finally:
        remove(SCRATCH_DIR)

    report["machine"]["loadavg_end"] = list(os.getloadavg())
    end_hash = code_hash()
    report["machine"]["backupkit_code_hash_end"] = end_hash
    if end_hash != report["machine"]["backupkit_code_hash"]:
        # The contenders import backupkit afresh on every run, so the rounds mixed two versions.
        print(
            "bench: warning: backupkit/ changed during this run; its rounds measured different "
            "code: run again for a clean comparison",
            file=sys.stderr,
        )
    out = args.json
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
