"""scripts/bench still runs end to end: the bench package on a tiny tree.

A smoke run times nothing worth reading; it proves that every contender runs and succeeds, that
the writer probe runs, that the breakdown still reaches backupkit's capture and check functions,
and that the JSON report keeps its shape and judges every target. The parts a one-tree run does
not reach (cost per GiB across sizes, the per-database comparison) are checked on made-up
timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.benchkit import targets
from scripts.benchkit.rounds import Contender
from scripts.benchkit.timing import PerDatabaseResult, TreeResult
from scripts.benchkit.trees import Tree, TreeSpec

REPO = Path(__file__).resolve().parent.parent
BENCHKIT = REPO / "scripts" / "benchkit"

TREE_CONTENDERS = {
    "naive",
    "floor",
    "backupkit",
    "backupkit+verify",
    "backupkit-fast",
    "naive-verify",
    "backupkit-verify",
}
CONTENDER_KEYS = {
    "key",
    "label",
    "group",
    "command",
    "times_s",
    "median_s",
    "ratio_vs_naive",
    "ratio_vs_naive_paired",
    "ratio_vs_floor",
    "mb_per_s",
    "peak_rss_mb",
    "output_bytes",
    "failures",
}
TARGET_KEYS = {"target", "measured", "limit", "unit", "result"}
LOAD_KEYS = {"wall_s", "loadavg_before", "loadavg_after", "own_cpu_s", "other_cpu_s"}


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    work = tmp_path_factory.mktemp("bench")
    out = work / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCHKIT),
            "--smoke",
            "--breakdown",
            "--bench-dir",
            str(work / "bench"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The scratch directory goes at the end; the cached trees stay.
    assert not (work / "bench" / "run").exists()
    return json.loads(out.read_text()), proc.stdout


def _assert_timed(contender: dict) -> None:
    assert set(contender) >= CONTENDER_KEYS, contender["key"]
    assert contender["failures"] == [], contender
    assert contender["times_s"], contender["key"]
    assert all(t > 0 for t in contender["times_s"]), contender
    assert contender["median_s"] > 0, contender


def _assert_judged(target: dict) -> None:
    assert set(target) == TARGET_KEYS
    assert target["result"] in ("PASS", "MISS"), target


def test_smoke_report_has_every_section(smoke_report: tuple[dict, str]) -> None:
    report, _ = smoke_report
    assert {"machine", "params", "trees", "nightly", "writer", "breakdown"} <= set(report)
    machine = report["machine"]
    assert {"cpu_count", "git_commit", "backupkit_code_hash", "backupkit_code_hash_end"} <= set(
        machine
    )
    assert len(machine["loadavg_start"]) == len(machine["loadavg_end"]) == 3
    assert set(machine["machine_load"]) >= LOAD_KEYS
    assert report["params"]["smoke"] is True
    assert report["params"]["rounds"] == 1


def test_smoke_every_contender_ran_and_took_time(smoke_report: tuple[dict, str]) -> None:
    report, _ = smoke_report
    (tree,) = report["trees"]
    expected = set(TREE_CONTENDERS)
    if report["params"]["restore_benched"]:
        expected.add("backupkit-restore")
    assert {c["key"] for c in tree["contenders"]} == expected
    for contender in tree["contenders"]:
        _assert_timed(contender)


def test_smoke_every_target_has_a_verdict(smoke_report: tuple[dict, str]) -> None:
    report, stdout = smoke_report
    (tree,) = report["trees"]
    names = [t["target"] for t in tree["targets"]]
    assert any("x naive" in n for n in names)
    assert any("x floor" in n for n in names)
    assert any("peak RSS" in n for n in names)
    for target in [*tree["targets"], report["writer"]["target"]]:
        _assert_judged(target)
        # The printed table says the same as the JSON.
        assert target["target"] in stdout
    assert set(tree["machine_load"]) >= LOAD_KEYS
    assert len(tree["machine_load"]["rounds"]) == 1


def test_smoke_writer_and_breakdown_ran(smoke_report: tuple[dict, str]) -> None:
    report, _ = smoke_report
    writer = report["writer"]
    assert writer["backup_exit"] == 0
    assert [w["writer_on"] for w in writer["writers"]] == ["global database", "an agent database"]
    assert all(w["commits"] > 0 and w["failed"] == 0 for w in writer["writers"])
    stages = report["breakdown"]["stages"]
    assert {s["stage"] for s in stages} == {"capture", "check", "hash", "compress"}
    assert all(s["wall_s"] > 0 and s["cpu_s"] >= 0 for s in stages)
    assert report["breakdown"]["cpu_s_defaults"] > 0


NIGHTLY_CONTENDERS = {"naive", "backupkit-full", "backupkit-nightly"}


def test_smoke_nightly_rounds_ran_on_both_trees_and_were_judged(
    smoke_report: tuple[dict, str],
) -> None:
    report, stdout = smoke_report
    sized, many = report["nightly"]
    assert many["agents"] > sized["agents"]
    for tree in (sized, many):
        keys = {c["key"] for c in tree["contenders"]}
        assert keys >= NIGHTLY_CONTENDERS
        # restic and borg run where they are installed (scripts/bench installs them).
        assert keys - NIGHTLY_CONTENDERS <= {
            "restic-first",
            "restic-nightly",
            "borg-first",
            "borg-nightly",
        }
        for contender in tree["contenders"]:
            _assert_timed(contender)
        assert tree["changed_per_round"] == [1]
        names = [t["target"] for t in tree["targets"]]
        assert any(n.startswith("nightly <=") for n in names)
        assert any(n.startswith("full <=") for n in names)
        for target in tree["targets"]:
            _assert_judged(target)
            assert target["target"] in stdout
        assert set(tree["machine_load"]) >= LOAD_KEYS


def _tree(label: str, databases: int, state_bytes: int) -> Tree:
    spec = TreeSpec(label, databases, state_bytes // databases)
    dbs = [{"role": "agent"}] * databases
    return Tree(spec, Path("/nonexistent"), dbs, state_bytes, None)


def _timed(key: str, *times: float) -> Contender:
    return Contender(key, key, "backup", ["true"], [], times=list(times))


def test_linearity_compares_seconds_per_gib_across_sizes() -> None:
    results = [
        TreeResult(
            _tree(label, 43, gib << 30), 1, [_timed("backupkit", s), _timed("naive", 2 * s)], {}
        )
        for label, gib, s in (("1 GiB tree", 1, 4.0), ("2 GiB tree", 2, 10.0))
    ]
    lin = targets.linearity(results)
    assert lin is not None
    assert [p["s_per_gib"] for p in lin["points"]] == [4.0, 5.0]
    assert lin["spread"] == pytest.approx(0.25)
    assert lin["target"]["result"] == "MISS"
    assert targets.linearity(results[:1]) is None


def test_per_database_cost_scales_the_few_databases_to_the_same_bytes() -> None:
    many, few = _tree("many", 1003, 2_000_000), _tree("few", 11, 1_000_000)
    contenders = [
        _timed("naive@many", 30.0),
        _timed("backupkit@many", 12.0),
        _timed("naive@few", 5.0),
        _timed("backupkit@few", 4.0),
    ]
    cost = targets.per_database_cost(PerDatabaseResult(many, few, 1, contenders, {}))
    # backupkit: 12 s against 4 s x 2 (the same bytes), over 992 more databases.
    assert cost["backupkit_added_ms_per_database"] == pytest.approx(4000 / 992)
    assert cost["naive_added_ms_per_database"] == pytest.approx(20_000 / 992)
    assert cost["target"]["result"] == "PASS"
