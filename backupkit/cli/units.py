"""Sizes, durations and ratios as people read them: `15.0 MiB`, `20s`, `3h 05m`, `3.6x`."""

from __future__ import annotations

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def size(n: int | float | None) -> str:
    """Binary units, one decimal past bytes: 512 B, 4.2 KiB, 15.0 MiB."""
    if n is None:
        return "?"
    value = float(n)
    for unit in _SIZE_UNITS:
        if abs(value) < 1024 or unit == _SIZE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    """How long something took or has been: 0.04s, 4.2s, 20s, 4m 05s, 3h 05m, 2d 03h."""
    if seconds is None:
        return "?"
    s = max(0.0, seconds)
    if s < 1:
        return f"{s:.2f}s"
    if s < 10:
        return f"{s:.1f}s"
    whole = round(s)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def rate(n_bytes: float, seconds: float) -> str:
    """Throughput, or `?` while too little time has passed to say."""
    if seconds <= 0:
        return "?"
    return f"{size(n_bytes / seconds)}/s"


def ratio(before: int, after: int) -> str:
    """How many times smaller `after` is: 3.6x."""
    if after <= 0:
        return "?"
    return f"{before / after:.1f}x"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"
