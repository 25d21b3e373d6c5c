"""Retention rules (restic forget semantics) on generated calendars, in local time."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from backupkit.errors import InputError
from backupkit.ops.retention import Policy, select


def _kept(times: list[datetime], **counts: int) -> list[datetime]:
    decisions = select(times, Policy(counts))
    return sorted((t for t, d in zip(times, decisions, strict=True) if d.keep), reverse=True)


def _daily(start: datetime, days: int, *, hour: int = 3) -> list[datetime]:
    return [start.replace(hour=hour) + timedelta(days=i) for i in range(days)]


def test_keep_last_keeps_the_n_newest() -> None:
    times = _daily(datetime(2026, 3, 1), 10)
    assert _kept(times, last=3) == sorted(times, reverse=True)[:3]


def test_keep_daily_keeps_the_newest_archive_of_each_of_the_last_n_days() -> None:
    days = _daily(datetime(2026, 3, 1), 5)
    several = [t + timedelta(hours=h) for t in days for h in (0, 6, 12, 18)]
    kept = _kept(several, daily=3)
    assert kept == [datetime(2026, 3, d, 21) for d in (5, 4, 3)]


def test_days_without_archives_do_not_use_up_the_count() -> None:
    times = [datetime(2026, 3, d, 3) for d in (1, 2, 3, 10, 11, 20)]
    assert _kept(times, daily=4) == [datetime(2026, 3, d, 3) for d in (20, 11, 10, 3)]


def test_monthly_crosses_the_year_boundary() -> None:
    times = _daily(datetime(2025, 11, 1), 107)  # 2025-11-01 .. 2026-02-15
    assert _kept(times, monthly=3) == [
        datetime(2026, 2, 15, 3),
        datetime(2026, 1, 31, 3),
        datetime(2025, 12, 31, 3),
    ]


def test_weekly_uses_iso_weeks_across_the_year_boundary() -> None:
    # 2025-12-29 (Monday) .. 2026-01-04 (Sunday) is ISO week 2026-W01.
    times = _daily(datetime(2025, 12, 22), 21)  # through 2026-01-11
    assert _kept(times, weekly=3) == [
        datetime(2026, 1, 11, 3),
        datetime(2026, 1, 4, 3),
        datetime(2025, 12, 28, 3),
    ]


def test_yearly_and_hourly_buckets() -> None:
    times = [datetime(y, 6, 1, 3) for y in (2023, 2024, 2025)] + [
        datetime(2025, 6, 1, 3, m) for m in (10, 20)
    ]
    assert _kept(times, yearly=2) == [datetime(2025, 6, 1, 3, 20), datetime(2024, 6, 1, 3)]
    assert _kept(times, hourly=1) == [datetime(2025, 6, 1, 3, 20)]


def test_rules_combine_as_a_union() -> None:
    times = _daily(datetime(2026, 1, 1), 90, hour=3)
    kept = _kept(times, last=2, monthly=3)
    assert kept == [
        datetime(2026, 3, 31, 3),
        datetime(2026, 3, 30, 3),
        datetime(2026, 2, 28, 3),
        datetime(2026, 1, 31, 3),
    ]


def test_every_kept_archive_says_which_rules_kept_it() -> None:
    times = _daily(datetime(2026, 1, 1), 3)
    decisions = select(times, Policy({"last": 1, "daily": 2}))
    newest = max(range(3), key=lambda i: times[i])
    assert decisions[newest].reasons == ["last", "daily"]


def test_an_empty_policy_is_refused() -> None:
    with pytest.raises(InputError, match="empty retention policy"):
        Policy({})
    with pytest.raises(InputError):
        Policy({"daily": 0})


def test_policy_text_round_trips_and_rejects_nonsense() -> None:
    assert Policy.parse("weekly=4, daily=7").describe() == "daily=7,weekly=4"
    with pytest.raises(InputError):
        Policy.parse("daily=seven")
    with pytest.raises(InputError):
        Policy.parse("fortnightly=2")


@pytest.fixture
def tz_plus_two() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Etc/GMT-2"  # POSIX sign: this is UTC+2
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_buckets_follow_local_time(tz_plus_two: None) -> None:
    from datetime import UTC

    # 22:30 and 23:30 UTC on March 1st are 00:30 and 01:30 on March 2nd at UTC+2.
    utc = [
        datetime(2026, 3, 1, 21, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 22, 30, tzinfo=UTC),
        datetime(2026, 3, 1, 23, 30, tzinfo=UTC),
    ]
    local = [t.astimezone() for t in utc]
    decisions = select(local, Policy({"daily": 5}))
    assert [d.keep for d in decisions] == [True, False, True]
