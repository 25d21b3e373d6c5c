"""The command line, and the order in which a run does things.

A run: check the tools and the free disk, take the checkout's bench lock, then for each sized
tree build (or reuse) it, time its contenders in rounds and print its table; then the gateway
writer probe and the stage breakdown on the first tree, the cost per GiB across sizes, the
per-database comparison, and finally the JSON report. The exit code is 0 whatever the targets
say; 2 means not enough disk, 3 another bench holding the lock.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import breakdown, nightly, report, targets, timing, trees, writer_probe
from .contenders import restore_available
from .files import remove
from .machine import code_hash, machine_info
from .rounds import LoadSample, describe_load, load_between, sample_load
from .settings import (
    DEFAULT_AGENTS,
    DEFAULT_BENCH_DIR,
    DEFAULT_ROUNDS,
    DEFAULT_SIZE_GIB,
    QUICK_SIZE_GIB,
    SMOKE_AGENTS,
    SMOKE_SIZE_GIB,
    ZSTD_LEVEL,
    Paths,
    shown,
)


def parse_sizes(text: str) -> list[float]:
    try:
        sizes = [float(s) for s in text.split(",") if s.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--sizes wants GiB numbers like 0.5,2,8: {err}") from err
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError("--sizes wants positive GiB numbers like 0.5,2,8")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Time backupkit against a naive shell pipeline and the compression floor, "
        "in the same rounds, on cached fixture trees.",
    )
    parser.add_argument(
        "--sizes", type=parse_sizes, default=None, help="tree sizes in GiB (default 2)"
    )
    parser.add_argument(
        "--agents",
        type=int,
        default=None,
        help=f"agents per sized tree (default {DEFAULT_AGENTS}; {SMOKE_AGENTS} with --smoke)",
    )
    parser.add_argument(
        "--agents1000",
        action="store_true",
        help="also time 1,000 agents x 1 MiB against the same bytes in a few databases "
        "(40 agents x 64 KiB with --smoke)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds (default 3; 1 with --quick or --smoke)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write results (default results.json in the bench dir)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short run: one 200 MiB tree, one round"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="check that every part runs, in seconds: one 8 MiB tree of 8 agents, one round "
        "(the timings mean little at that size)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also measure each backup stage's CPU cost alone, on the first tree",
    )
    parser.add_argument(
        "--encrypted",
        action="store_true",
        help="also time an encrypted backup (--encrypt-to, age) against the plain one",
    )
    parser.add_argument(
        "--no-nightly",
        action="store_true",
        help="skip the nightly nightly backups (backupkit --full, then a nightly after 5 %% of "
        "the agents changed, against the naive pipeline, restic and borg)",
    )
    parser.add_argument(
        "--nightly-only",
        action="store_true",
        help="time only the nightly rounds (and the trees they need): the nightly targets",
    )
    parser.add_argument(
        "--no-writer",
        action="store_true",
        help="skip timing a gateway writer's commits during a backup of the first tree",
    )
    parser.add_argument(
        "--offsite",
        action="store_true",
        help="only time uploads: backupkit push against boto3's upload_file, to a local S3 "
        "server (2 GiB archive; 200 MiB with --quick, 16 MiB with --smoke)",
    )
    parser.add_argument(
        "--bench-dir",
        type=Path,
        default=DEFAULT_BENCH_DIR,
        help="where cached trees, scratch files and the lock live (default .bench/ in the "
        "checkout)",
    )
    return parser


@dataclass(frozen=True)
class Options:
    sizes: list[float]
    agents: int
    rounds: int
    args: argparse.Namespace
    paths: Paths

    @property
    def json_out(self) -> Path:
        return self.args.json if self.args.json is not None else self.paths.default_json


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = build_parser()
    args = parser.parse_args(argv)
    quick = args.quick or args.smoke
    default_size = SMOKE_SIZE_GIB if args.smoke else QUICK_SIZE_GIB if quick else DEFAULT_SIZE_GIB
    sizes = args.sizes or [default_size]
    default_agents = SMOKE_AGENTS if args.smoke else DEFAULT_AGENTS
    agents = args.agents if args.agents is not None else default_agents
    rounds = args.rounds if args.rounds is not None else (1 if quick else DEFAULT_ROUNDS)
    if rounds < 1 or agents < 1:
        parser.error("--rounds and --agents must be at least 1")
    for tool in ("sqlite3", "zstd", "tar", "bash"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH (scripts/bench installs it)")
    # Contenders run from the checkout: a relative bench dir must not follow them there.
    return Options(sizes, agents, rounds, args, Paths(args.bench_dir.resolve()))


def _time_trees(
    opts: Options,
    specs: list[trees.TreeSpec],
    want_hash: str,
    with_restore: bool,
    out: dict[str, Any],
) -> list[timing.TreeResult]:
    results = []
    for spec in specs:
        tree = trees.describe_tree(trees.ensure_tree(spec, want_hash, opts.paths), spec, opts.paths)
        keep = trees.ledger_ids(tree.global_db)
        print(f"timing {spec.label} ({len(tree.databases)} databases)", flush=True)
        try:
            result = timing.bench_tree(
                tree, opts.rounds, with_restore, opts.paths.scratch, opts.args.encrypted
            )
        finally:
            trees.forget_bench_runs(tree.global_db, keep)
        results.append(result)
        out["trees"].append(report.print_tree(result, targets.tree_targets(result.contenders)))
    return results


def _time_nightly(opts: Options, first: trees.Tree, want_hash: str) -> list[dict[str, Any]]:
    """The nightly rounds on the first sized tree and on the many-agent tree."""
    args = opts.args
    many_spec = nightly.many_spec(args.quick, args.smoke)
    many = trees.describe_tree(
        trees.ensure_tree(many_spec, want_hash, opts.paths), many_spec, opts.paths
    )
    results = []
    for tree, is_many in ((first, False), (many, True)):
        keep = trees.ledger_ids(tree.global_db)
        print(f"timing nightly backups on the {tree.spec.label}", flush=True)
        try:
            result = nightly.bench_nightly(tree, opts.rounds, opts.paths.scratch / "nightly")
        finally:
            trees.forget_bench_runs(tree.global_db, keep)
        judged = targets.nightly_targets(result, many=is_many)
        results.append(report.print_nightly(result, judged))
    return results


def _time_writer(opts: Options, first: trees.Tree) -> dict[str, Any]:
    keep = trees.ledger_ids(first.global_db)
    print(f"timing gateway writers during a backup of the {first.spec.label}", flush=True)
    try:
        result = writer_probe.bench_writer(first, opts.paths.scratch)
    finally:
        trees.forget_bench_runs(first.global_db, keep)
    report.print_writer(result)
    return result


def _time_breakdown(opts: Options, first: trees.Tree) -> dict[str, Any]:
    print(f"measuring stage costs on the {first.spec.label}", flush=True)
    summary = breakdown.summarize(breakdown.bench_breakdown(first, opts.paths.scratch), first)
    report.print_breakdown(summary)
    return summary


def _time_per_database(
    opts: Options, specs: tuple[trees.TreeSpec, trees.TreeSpec], want_hash: str
) -> dict[str, Any]:
    many, few = (
        trees.describe_tree(trees.ensure_tree(s, want_hash, opts.paths), s, opts.paths)
        for s in specs
    )
    keeps = [(t.global_db, trees.ledger_ids(t.global_db)) for t in (many, few)]
    print(
        f"timing per-database cost: {len(many.databases)} vs {len(few.databases)} databases",
        flush=True,
    )
    try:
        result = timing.bench_per_database(many, few, opts.rounds, opts.paths.scratch)
    finally:
        for db, keep in keeps:
            trees.forget_bench_runs(db, keep)
    return report.print_per_database(result, targets.per_database_cost(result))


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_options(argv)
    args, paths = opts.args, opts.paths
    if args.offsite:
        from . import offsite

        size_mib = 16 if args.smoke else 200 if args.quick else 2048
        json_path = args.json or paths.bench / "offsite.json"
        return offsite.run(paths.bench, size_mib, opts.rounds, json_path)
    specs = trees.sized_specs(opts.sizes, opts.agents)
    per_db_specs = trees.per_database_specs(args.smoke) if args.agents1000 else None
    want_hash = trees.fixture_hash()
    problems = trees.check_space(specs + list(per_db_specs or ()), want_hash, paths)
    if problems:
        for p in problems:
            print(f"bench: {p}", file=sys.stderr)
        return 2

    paths.bench.mkdir(parents=True, exist_ok=True)
    # Two benches at once would delete each other's scratch and skew each other's timings.
    lock_fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"bench: another scripts/bench is running on {shown(paths.bench)}", file=sys.stderr)
        return 3
    remove(paths.scratch)
    paths.scratch.mkdir(parents=True)
    with_restore = restore_available()
    start = sample_load()
    out: dict[str, Any] = {
        "machine": machine_info(),
        "params": {
            "sizes_gib": opts.sizes,
            "agents": opts.agents,
            "rounds": opts.rounds,
            "quick": args.quick,
            "smoke": args.smoke,
            "zstd_level": ZSTD_LEVEL,
            "restore_benched": with_restore,
            "bench_dir": os.fspath(paths.bench),
        },
        "trees": [],
    }
    report.print_header(out["machine"], with_restore)

    try:
        if args.nightly_only:
            first = trees.describe_tree(
                trees.ensure_tree(specs[0], want_hash, paths), specs[0], paths
            )
            out["nightly"] = _time_nightly(opts, first, want_hash)
        else:
            _time_all(opts, specs, per_db_specs, want_hash, with_restore, out)
    finally:
        remove(paths.scratch)
    return _finish(out, opts, start)


def _time_all(
    opts: Options,
    specs: list[trees.TreeSpec],
    per_db_specs: tuple[trees.TreeSpec, trees.TreeSpec] | None,
    want_hash: str,
    with_restore: bool,
    out: dict[str, Any],
) -> None:
    args = opts.args
    results = _time_trees(opts, specs, want_hash, with_restore, out)
    if results and not args.no_nightly:
        out["nightly"] = _time_nightly(opts, results[0].tree, want_hash)
    if results and not args.no_writer:
        out["writer"] = _time_writer(opts, results[0].tree)
    if args.breakdown and results:
        out["breakdown"] = _time_breakdown(opts, results[0].tree)
    lin = targets.linearity(results)
    if lin is not None:
        out["linearity"] = lin
        report.print_linearity(lin)
    if per_db_specs:
        out["per_database"] = _time_per_database(opts, per_db_specs, want_hash)


def _finish(out: dict[str, Any], opts: Options, start: LoadSample) -> int:
    """The run's closing lines: how busy the machine was, whether the code changed, the JSON."""
    machine = out["machine"]
    machine["loadavg_end"] = list(os.getloadavg())
    machine["machine_load"] = load_between(start, sample_load())
    print(f"\nmachine over the whole run: {describe_load(machine['machine_load'])}")
    machine["backupkit_code_hash_end"] = code_hash()
    if machine["backupkit_code_hash_end"] != machine["backupkit_code_hash"]:
        # The contenders import backupkit afresh on every run, so the rounds mixed two versions.
        print(
            "bench: warning: backupkit/ changed during this run; its rounds measured different "
            "code: run again for a clean comparison",
            file=sys.stderr,
        )
    report.write_json(out, opts.json_out)
    return 0
