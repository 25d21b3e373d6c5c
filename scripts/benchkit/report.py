"""The printed tables and the JSON report: every figure printed is also in the JSON."""

from __future__ import annotations

import json
import os
import re
import shlex
import statistics
from pathlib import Path
from typing import Any

from .nightly import NightlyResult
from .rounds import Contender, describe_load, paired_ratio, ratio
from .settings import MB, human
from .timing import PerDatabaseResult, TreeResult
from .trees import Tree


def fmt(value: float | None, spec: str) -> str:
    if value is None:
        # Keep the column aligned: pad the dash to the width the spec asks for.
        width = re.match(r"\d*", spec)
        return "-".rjust(int(width.group()) if width and width.group() else 0)
    return format(value, spec)


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


def print_header(machine: dict[str, Any], with_restore: bool) -> None:
    m = machine
    print(
        f"bench: {m['cpu_count']} cores ({m['cpu_model']}), Python {m['python']}, "
        f"sqlite {m['sqlite_python']}, zstd {m['zstd_cli']}, backupkit {m['backupkit']} "
        f"@ {m['git_commit']}{' (uncommitted changes)' if m['backupkit_tree_dirty'] else ''}, "
        f"load {m['loadavg_start'][0]:.1f}",
        flush=True,
    )
    if not with_restore:
        print("bench: `backupkit restore` is not available yet: restore is not timed", flush=True)


def print_targets(targets: list[dict[str, Any]], kind: str = "full-backup") -> None:
    print(f"{kind} targets (a measurement in this run, not a test):")
    for t in targets:
        value = "-" if t["measured"] is None else f"{t['measured']:.2f} {t['unit']}"
        print(f"  {t['target']:<52} {value:>12}  {t['result']}")


def print_tree(result: TreeResult, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """The tree's table and targets; returns the tree's entry for the JSON report."""
    tree = result.tree
    by = result.by_key()
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
    print(f"machine during these rounds: {describe_load(result.machine_load)}")
    print_targets(targets)
    return {
        **tree_summary(tree),
        "rounds": result.rounds,
        "contenders": rows,
        "targets": targets,
        "machine_load": result.machine_load,
    }


def print_writer(result: dict[str, Any]) -> None:
    print()
    print(
        f"== gateway writers during a default backup of the {result['tree']} "
        f"({result['backup_s']:.1f} s, exit {result['backup_exit']}):"
    )
    if result.get("backup_error"):
        print(f"  backup failed: {result['backup_error']}")
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


def print_breakdown(summary: dict[str, Any]) -> None:
    cores, now, tuned = summary["cores"], summary["cpu_s_defaults"], summary["cpu_s_cheapest"]
    print()
    print(f"== stage costs on the {summary['tree']} (CPU seconds are steadier than wall time):")
    for r in summary["stages"]:
        shown = "" if r["in_sum"] else "  (inside capture or verify)"
        print(
            f"  {r['stage']:<9} {r['variant']:<52} {r['cpu_s']:6.2f} CPU-s  "
            f"{r['wall_s']:6.2f} s{shown}"
        )
    stages = " + ".join(summary["summed_stages"])
    print(
        f"  sum of stages ({stages}) with defaults: {now:.1f} CPU-s, so at least "
        f"{now / cores:.1f} s on {cores} cores; with the cheapest variants: {tuned:.1f} CPU-s, "
        f"at least {tuned / cores:.1f} s"
    )


def print_linearity(lin: dict[str, Any]) -> None:
    print()
    print("cost per GiB (backupkit --no-verify; each size ran in its own rounds):")
    for p in lin["points"]:
        print(
            f"  {p['label']:<16} {p['s_per_gib']:6.2f} s/GiB  "
            f"(naive {fmt(p['naive_s_per_gib'], '.2f')} s/GiB, "
            f"ratio {fmt(p['ratio_vs_naive'], '.2f')})"
        )
    print_targets([lin["target"]])


def print_per_database(result: PerDatabaseResult, cost: dict[str, Any]) -> dict[str, Any]:
    """The per-database table and target; returns its entry for the JSON report."""
    many, few = result.many, result.few
    contenders = [
        contender_summary(c, None, None, (many if c.key.endswith("@many") else few).state_bytes)
        for c in result.contenders
    ]
    print()
    print(
        f"== per-database cost: {len(many.databases)} databases "
        f"({many.state_bytes / MB:,.0f} MB) vs {len(few.databases)} databases "
        f"({few.state_bytes / MB:,.0f} MB), median of {result.rounds} round(s)"
    )
    for c in contenders:
        print(f"  {c['label']:<40} {fmt(c['median_s'], '8.2f')} s")
    print(
        "  added ms per database: naive "
        f"{fmt(cost['naive_added_ms_per_database'], '.1f')}, backupkit "
        f"{fmt(cost['backupkit_added_ms_per_database'], '.1f')}"
    )
    print(f"  machine during these rounds: {describe_load(result.machine_load)}")
    print_targets([cost["target"]])
    return {
        "many": tree_summary(many),
        "few": tree_summary(few),
        "rounds": result.rounds,
        "contenders": contenders,
        **cost,
        "machine_load": result.machine_load,
    }


def write_json(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults written to {out}")


def print_nightly(result: NightlyResult, targets: list[dict[str, Any]]) -> dict[str, Any]:
    """The first-and-nightly table and the nightly targets; returns the JSON entry."""
    tree = result.tree
    print()
    print(
        f"== nightly backups on the {tree.spec.label}: {len(tree.databases)} databases, "
        f"{tree.state_bytes / MB:,.0f} MB of state, {result.changed[0] if result.changed else 0} "
        f"agent databases changed before each nightly, median of {result.rounds} round(s)"
    )
    header = f"{'contender':<52} {'median s':>9} {'per round s':>24} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    rows = []
    for c in result.first + result.nightly:
        row = contender_summary(c, None, None, tree.state_bytes)
        rows.append(row)
        rounds = ", ".join(f"{t:.2f}" for t in c.times)
        failed = f"  ({len(c.failures)} failed)" if c.failures else ""
        print(
            f"{c.label:<52} {fmt(row['median_s'], '9.2f')} {rounds:>24} "
            f"{fmt(row['peak_rss_mb'], '12.0f')}{failed}"
        )
    print(f"machine during these rounds: {describe_load(result.machine_load)}")
    print_targets(targets, kind="nightly")
    return {
        **tree_summary(tree),
        "rounds": result.rounds,
        "changed_per_round": result.changed,
        "contenders": rows,
        "targets": targets,
        "machine_load": result.machine_load,
    }
