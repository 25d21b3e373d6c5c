"""Retention with restic `forget` semantics.

Archives are walked newest first. Each rule keeps an archive when the archive falls in a calendar
bucket (local time) that rule has not yet used, until the rule's count runs out; `last` keeps the
N newest outright. An archive is kept if any rule keeps it (the union). Within a bucket the newest
archive is the one kept, because it is seen first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import OptionError

RULES: dict[str, Callable[[datetime], object]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}
ORDER = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class Policy:
    counts: dict[str, int]

    def __post_init__(self) -> None:
        for name, n in self.counts.items():
            if name not in ORDER:
                raise OptionError(f"unknown retention rule {name!r}: use {', '.join(ORDER)}")
            if n < 0:
                raise OptionError(f"--keep-{name} must be 0 or more")
        if not any(self.counts.values()):
            raise OptionError(
                "an empty retention policy would delete everything: give at least one --keep-* rule"
            )

    @classmethod
    def parse(cls, text: str) -> Policy:
        """`daily=7,weekly=4` (the form `backup --prune` and schedule take)."""
        counts: dict[str, int] = {}
        for part in text.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or not value.strip().isdigit():
                raise OptionError(f"bad retention policy {text!r}: write it like daily=7,weekly=4")
            counts[name.strip()] = int(value)
        return cls(counts)

    def describe(self) -> str:
        return ",".join(f"{k}={self.counts[k]}" for k in ORDER if self.counts.get(k))


@dataclass
class Decision:
    keep: bool
    reasons: list[str] = field(default_factory=list)


def select(times: Sequence[datetime], policy: Policy) -> list[Decision]:
    """Decide for each time (in local time, any order) whether the policy keeps it."""
    order = sorted(range(len(times)), key=lambda i: times[i], reverse=True)
    decisions = [Decision(False) for _ in times]
    left = dict(policy.counts)
    last_bucket: dict[str, object] = {}
    for i in order:
        t = times[i]
        if left.get("last", 0) > 0:
            left["last"] -= 1
            decisions[i].keep = True
            decisions[i].reasons.append("last")
        for name, bucket_of in RULES.items():
            if left.get(name, 0) <= 0:
                continue
            bucket = bucket_of(t)
            if last_bucket.get(name) == bucket:
                continue
            last_bucket[name] = bucket
            left[name] -= 1
            decisions[i].keep = True
            decisions[i].reasons.append(name)
    return decisions
