"""Progress reporting: the library emits events, the CLI decides whether to draw them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # discover, capture, pack, verify, record
    done: int
    total: int
    detail: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def emit(
    callback: ProgressCallback | None, stage: str, done: int, total: int, detail: str = ""
) -> None:
    if callback is not None:
        callback(ProgressEvent(stage=stage, done=done, total=total, detail=detail))
