"""The full-backup and nightly targets, each judged PASS or MISS on what this run measured (n/a if
nothing was).

Ratios are against contenders measured in the same rounds. This is a measurement, not a test:
no verdict changes the exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .nightly import NightlyResult
from .rounds import Contender, ratio
from .timing import PerDatabaseResult, TreeResult

TARGET_BACKUP_VS_NAIVE = 0.40
TARGET_BACKUP_VS_FLOOR = 1.15
TARGET_VERIFY_VS_NAIVE = 0.80
TARGET_RESTORE_VS_NAIVE = 1.00
TARGET_PEAK_RSS_MB = 150.0
TARGET_LINEARITY = 0.15
TARGET_MS_PER_DATABASE = 15.0
WRITER_STALL_LIMIT_MS = 100.0


def verdict(value: float | None, limit: float) -> str:
    if value is None:
        return "n/a"
    return "PASS" if value <= limit else "MISS"


def target_row(name: str, value: float | None, limit: float, unit: str = "x") -> dict[str, Any]:
    return {
        "target": name,
        "measured": value,
        "limit": limit,
        "unit": unit,
        "result": verdict(value, limit),
    }


def tree_targets(contenders: Sequence[Contender]) -> list[dict[str, Any]]:
    by = {c.key: c for c in contenders}
    naive, floor = by["naive"].median, by["floor"].median
    rows: list[dict[str, Any]] = []
    for key in ("backupkit", "backupkit+verify"):
        m = by[key].median
        rows.append(
            target_row(
                f"{key} <= {TARGET_BACKUP_VS_NAIVE} x naive",
                ratio(m, naive),
                TARGET_BACKUP_VS_NAIVE,
            )
        )
        rows.append(
            target_row(
                f"{key} <= {TARGET_BACKUP_VS_FLOOR} x floor",
                ratio(m, floor),
                TARGET_BACKUP_VS_FLOOR,
            )
        )
    nv = by["naive-verify"].median
    rows.append(
        target_row(
            f"backupkit verify <= {TARGET_VERIFY_VS_NAIVE} x naive verify",
            ratio(by["backupkit-verify"].median, nv),
            TARGET_VERIFY_VS_NAIVE,
        )
    )
    if "backupkit-restore" in by:
        rows.append(
            target_row(
                f"backupkit restore <= {TARGET_RESTORE_VS_NAIVE} x naive extract+check",
                ratio(by["backupkit-restore"].median, nv),
                TARGET_RESTORE_VS_NAIVE,
            )
        )
    for c in contenders:
        if c.backupkit:
            name = f"{c.key} peak RSS <= {TARGET_PEAK_RSS_MB:.0f} MB"
            rows.append(target_row(name, c.peak_rss_mb, TARGET_PEAK_RSS_MB, "MB"))
    return rows


def linearity(results: Sequence[TreeResult]) -> dict[str, Any] | None:
    """Seconds per GiB of backupkit across sizes; each size ran in its own rounds."""
    points = []
    for r in results:
        by = r.by_key()
        c, naive = by["backupkit"], by["naive"]
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
        "target": target_row(
            f"backupkit s/GiB within {TARGET_LINEARITY:.0%} across sizes",
            spread,
            TARGET_LINEARITY,
            "spread",
        ),
    }


def per_database_cost(result: PerDatabaseResult) -> dict[str, Any]:
    """Milliseconds each extra database adds, for the naive pipeline and for backupkit."""
    by = {c.key: c for c in result.contenders}
    many, few = result.many, result.few
    extra_dbs = len(many.databases) - len(few.databases)
    cost: dict[str, Any] = {}
    for tool in ("naive", "backupkit"):
        t_many, t_few = by[f"{tool}@many"].median, by[f"{tool}@few"].median
        added = None
        if t_many is not None and t_few is not None and extra_dbs > 0:
            # The two trees hold almost, not exactly, the same bytes: scale the few-database
            # time to the many-database tree's bytes before taking the difference.
            scaled = t_few * many.state_bytes / few.state_bytes
            added = (t_many - scaled) / extra_dbs * 1000
        cost[f"{tool}_added_ms_per_database"] = added
    cost["target"] = target_row(
        f"backupkit adds <= {TARGET_MS_PER_DATABASE:.0f} ms per database",
        cost["backupkit_added_ms_per_database"],
        TARGET_MS_PER_DATABASE,
        "ms",
    )
    return cost


def writer_target(worst_ms: float | None, failed: int, backup_exit: int) -> dict[str, Any]:
    """The gateway's writes must neither fail nor stall while a backup runs."""
    row = target_row(
        f"writer: no failed commit, no stall > {WRITER_STALL_LIMIT_MS:.0f} ms",
        worst_ms,
        WRITER_STALL_LIMIT_MS,
        "ms",
    )
    if failed or backup_exit != 0:
        row["result"] = "MISS"
    return row


TARGET_NIGHTLY_SIZED = 0.10
TARGET_NIGHTLY_MANY = 0.20
TARGET_FULL_VS_NAIVE = 0.80
TARGET_VS_PEER = 1.00


def nightly_targets(result: NightlyResult, *, many: bool) -> list[dict[str, Any]]:
    """The nightly targets on one tree: the nightly against the full backup (1), the full one
    against the naive pipeline and restic (2), and both against restic and borg (3)."""
    by = result.by_key()
    full, nightly = by["backupkit-full"].median, by["backupkit-nightly"].median
    limit = TARGET_NIGHTLY_MANY if many else TARGET_NIGHTLY_SIZED
    rows = [
        target_row(
            f"nightly <= {limit} x full (5 % of agents changed)", ratio(nightly, full), limit
        ),
        target_row(
            f"full <= {TARGET_FULL_VS_NAIVE} x naive",
            ratio(full, by["naive"].median),
            TARGET_FULL_VS_NAIVE,
        ),
    ]
    for peer in ("restic", "borg"):
        for mine, key, what in (
            (full, f"{peer}-first", "full vs first backup"),
            (nightly, f"{peer}-nightly", "nightly vs nightly"),
        ):
            if key in by:
                rows.append(
                    target_row(
                        f"{what} <= {TARGET_VS_PEER} x {peer}",
                        ratio(mine, by[key].median),
                        TARGET_VS_PEER,
                    )
                )
    return rows
