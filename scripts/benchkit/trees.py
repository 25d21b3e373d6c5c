"""The state trees the bench measures: built once by `fixtures.build_state`, cached, described.

A tree is cached under `<bench dir>/trees/<key>/` with a `complete.json` marker that holds a hash
of the generator's source, so a changed generator or an interrupted build means a rebuild. What
backupkit would capture from a tree is asked once, through `backup --dry-run --json`, outside
any timing. The bench's own backups add `backup_runs` rows to the cached global database; they
are removed again so the cache stays as built.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .files import free_bytes
from .procs import backupkit_cmd, child_env
from .settings import (
    FEW_AGENTS,
    FREE_SPACE_FACTOR_BUILD,
    FREE_SPACE_FACTOR_RUN,
    GIB,
    MANY_AGENTS,
    MANY_BYTES_PER_AGENT,
    ROOT,
    SMOKE_MANY_AGENTS,
    SMOKE_MANY_BYTES_PER_AGENT,
    Paths,
    human,
    round_size,
    shown,
)


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
    databases: list[dict[str, Any]]  # the dry run's database entries
    state_bytes: int
    global_db: Path | None

    @property
    def gib(self) -> float:
        return self.state_bytes / GIB

    @property
    def inputs(self) -> list[Path]:
        """The state dir and the directory beside it that holds the external agent database."""
        return [self.state_dir, self.state_dir.parent / f"{self.state_dir.name}-external"]


def size_label(gib: float) -> str:
    return f"{gib * 1024:.0f} MiB tree" if gib < 1 else f"{gib:g} GiB tree"


def sized_specs(sizes: Sequence[float], agents: int) -> list[TreeSpec]:
    return [TreeSpec(size_label(s), agents, int(s * GIB) // agents) for s in sizes]


def per_database_specs(smoke: bool) -> tuple[TreeSpec, TreeSpec]:
    """Many small agent databases, and a few agents holding the same bytes."""
    many_agents, per_agent = (
        (SMOKE_MANY_AGENTS, SMOKE_MANY_BYTES_PER_AGENT)
        if smoke
        else (MANY_AGENTS, MANY_BYTES_PER_AGENT)
    )
    many_bytes = many_agents * per_agent
    return (
        TreeSpec(f"{many_agents:,} agents x {round_size(per_agent)}", many_agents, per_agent),
        TreeSpec(f"{FEW_AGENTS} agents, same bytes", FEW_AGENTS, many_bytes // FEW_AGENTS),
    )


def fixture_hash() -> str:
    """A cached tree is only reused if the generator that built it has not changed."""
    digest = hashlib.sha256()
    for name in ("state.py", "wal_writer.py"):
        digest.update((ROOT / "fixtures" / name).read_bytes())
    return digest.hexdigest()[:16]


def tree_is_cached(spec: TreeSpec, want_hash: str, paths: Paths) -> bool:
    marker = paths.trees / spec.key / "complete.json"
    try:
        return json.loads(marker.read_text()).get("fixture_hash") == want_hash
    except (OSError, ValueError):
        return False


def _build_state(state: Path, spec: TreeSpec) -> None:
    # The fixtures package lives at the checkout's root, which is not on the path when the
    # bench runs from scripts/.
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    from fixtures import build_state

    # No socket: the naive tar would warn about it, and backupkit only lists it as skipped.
    build_state(
        state,
        agents=spec.agents,
        bytes_per_agent=spec.bytes_per_agent,
        seed=spec.seed,
        with_socket=False,
    )


def ensure_tree(spec: TreeSpec, want_hash: str, paths: Paths) -> Path:
    """Build the tree unless a complete one with the same parameters and generator exists."""
    home = paths.trees / spec.key
    state = home / "state"
    if tree_is_cached(spec, want_hash, paths):
        print(f"using cached tree {shown(home)} ({spec.label})", flush=True)
        return state
    # A half-built or outdated tree: start over. build_state records absolute paths (the
    # external agent database), so the tree is built where it will stay, not renamed into place.
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    print(
        f"building tree {shown(home)}: {spec.agents} agents x {human(spec.bytes_per_agent)} ...",
        flush=True,
    )
    started = time.perf_counter()
    _build_state(state, spec)
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


def check_space(specs: Sequence[TreeSpec], want_hash: str, paths: Paths) -> list[str]:
    """Refuse before building anything rather than fill the disk half way through a run."""
    problems = []
    free = free_bytes(paths.bench)
    need_build = sum(
        spec.nominal_bytes * FREE_SPACE_FACTOR_BUILD
        for spec in specs
        if not tree_is_cached(spec, want_hash, paths)
    )
    need_run = max((spec.nominal_bytes * FREE_SPACE_FACTOR_RUN for spec in specs), default=0)
    need = max(need_build, need_run)
    if free < need:
        problems.append(
            f"not enough free disk under {paths.bench}: {human(free)} free, {human(need)} needed "
            f"({FREE_SPACE_FACTOR_BUILD}x each tree to build, {FREE_SPACE_FACTOR_RUN}x the "
            "largest to run); free some space or choose smaller --sizes"
        )
    return problems


def describe_tree(state: Path, spec: TreeSpec, paths: Paths) -> Tree:
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
            str(paths.scratch / "dry-run"),
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
    return Tree(spec, state, databases, int(plan["input_bytes"]), global_db)


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
