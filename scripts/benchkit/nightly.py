"""What a nightly backup costs next to a full one, and next to restic and borg.

Each round on a tree has two groups. First backups: the naive pipeline (target 2's baseline),
backupkit `--full` (verify on: every database captured, checked, hashed, compressed, read back),
and restic's and borg's first backup into fresh repositories. Then 5 % of the agent databases
change through SQLite (rows inserted, updated and deleted, committed as the gateway commits),
and the nightly backups run, each from its own first one: backupkit's default backup (verify
on) reusing what its `--full` archive holds, restic's and borg's second snapshot. Inside each
group the order is reversed every other round (ABBA). Repositories and archives are removed
at the end of each round.

The change is left in the cached tree (the rows stay), as it would in a gateway's state.
"""

from __future__ import annotations

import math
import random
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contenders import naive_backup
from .files import remove
from .peers import Peer, peers
from .procs import backupkit_cmd
from .rounds import Contender, LoadLog, abba, run_once
from .settings import KIB, MANY_AGENTS, MIB
from .trees import Tree, TreeSpec

CHANGED_FRACTION = 0.05
ROWS_PER_CHANGE = 20  # inserted, and as many updated; half as many deleted
ROW_BYTES = 2 * KIB
# The 1,000-agent tree of target 1: 1 MiB each in a reference run, less in a quick one.
QUICK_MANY_BYTES_PER_AGENT = 128 * KIB
SMOKE_MANY = (20, 64 * KIB)


def many_spec(quick: bool, smoke: bool) -> TreeSpec:
    agents, per_agent = (
        SMOKE_MANY if smoke else (MANY_AGENTS, QUICK_MANY_BYTES_PER_AGENT if quick else MIB)
    )
    size = f"{per_agent // MIB} MiB" if per_agent >= MIB else f"{per_agent // KIB} KiB"
    return TreeSpec(f"{agents:,} agents x {size}", agents, per_agent)


@dataclass
class NightlyResult:
    tree: Tree
    rounds: int
    first: list[Contender]
    nightly: list[Contender]
    changed: list[int]  # databases changed before each round's nightly group
    machine_load: dict[str, Any]

    def by_key(self) -> dict[str, Contender]:
        return {c.key: c for c in self.first + self.nightly}


def agent_databases(tree: Tree) -> list[Path]:
    return [Path(d["source_path"]) for d in tree.databases if d["role"] == "agent"]


def change_agents(tree: Tree, round_no: int) -> int:
    """Insert, update and delete rows in 5 % of the agent databases (at least one), chosen
    afresh each round; returns how many changed."""
    agents = agent_databases(tree)
    rng = random.Random(round_no)
    chosen = rng.sample(agents, max(1, math.ceil(len(agents) * CHANGED_FRACTION)))
    for db in chosen:
        conn = sqlite3.connect(db, timeout=30)
        try:
            # Unique across runs: the rows of earlier runs stay in the cached tree.
            tag = f"bench-{secrets.token_hex(8)}"
            rows = [(f"{tag}-{i}", "x" * ROW_BYTES, round_no) for i in range(ROWS_PER_CHANGE)]
            conn.executemany("INSERT INTO session_entries VALUES (?, ?, ?)", rows)
            conn.execute(
                "UPDATE session_entries SET updated_at = updated_at + 1 WHERE rowid IN "
                "(SELECT rowid FROM session_entries ORDER BY random() LIMIT ?)",
                (ROWS_PER_CHANGE,),
            )
            conn.execute(
                "DELETE FROM session_entries WHERE rowid IN "
                "(SELECT rowid FROM session_entries ORDER BY random() LIMIT ?)",
                (ROWS_PER_CHANGE // 2,),
            )
            conn.commit()
        finally:
            conn.close()
    return len(chosen)


def _contenders(
    tree: Tree, scratch: Path, found: list[Peer]
) -> tuple[list[Contender], list[Contender]]:
    out = scratch / "bk-out"
    bk = ["--state-dir", str(tree.state_dir), "-q", "backup", "--output", str(out)]
    first = [
        naive_backup(tree, scratch),
        # Outputs are kept through the round: the nightly group continues from them.
        Contender(
            "backupkit-full",
            "backupkit backup --full (verify on)",
            "backup",
            backupkit_cmd(*bk, "--full"),
            [],
            backupkit=True,
        ),
    ]
    nightly = [
        Contender(
            "backupkit-nightly",
            "backupkit backup, nightly (verify on)",
            "backup",
            backupkit_cmd(*bk),
            [],
            backupkit=True,
        )
    ]
    for peer in found:
        first.append(
            Contender(
                f"{peer.key}-first",
                f"{peer.key} first backup",
                "backup",
                peer.backup_argv(tree, "first"),
                [],
            )
        )
        nightly.append(
            Contender(
                f"{peer.key}-nightly",
                f"{peer.key} backup, nightly",
                "backup",
                peer.backup_argv(tree, "nightly"),
                [],
            )
        )
    return first, nightly


def _fresh_round(scratch: Path, found: list[Peer]) -> None:
    for path in ("bk-out", "restic-repo", "restic-cache", "borg-repo", "borg-home"):
        remove(scratch / path)
    for peer in found:
        peer.init()


def bench_nightly(tree: Tree, rounds: int, scratch: Path) -> NightlyResult:
    remove(scratch)
    scratch.mkdir(parents=True)
    found = peers(scratch)
    first, nightly = _contenders(tree, scratch, found)
    rss = scratch / "rss.txt"
    changed = []
    log = LoadLog()
    for r in range(rounds):
        print(f"  round {r + 1}/{rounds}", flush=True)
        _fresh_round(scratch, found)
        for c in abba(first, r):
            run_once(c, rss)
        changed.append(change_agents(tree, r))
        print(f"    changed {changed[-1]} agent databases", flush=True)
        for c in abba(nightly, r):
            run_once(c, rss)
        log.round_done(r + 1)
    remove(scratch)
    return NightlyResult(tree, rounds, first, nightly, changed, log.summary())
