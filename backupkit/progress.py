"""Progress reporting: the library emits events, the CLI decides whether and how to draw them.

An event says how far one stage is: `done` of `total`, counted in items or in bytes, and what
the stage is working on now (`detail`, empty when nothing is in progress). Stages of a backup:
discover, capture and pack (which overlap: files are packed while databases are captured),
read-back, record; of a verify: verify; of a restore: verify, restore, swap. Events may come
from worker threads; a callback must be safe to call from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Unit = Literal["items", "bytes"]


@dataclass(frozen=True)
class ProgressEvent:
    stage: str
    done: int
    total: int
    detail: str = ""
    unit: Unit = "items"


ProgressCallback = Callable[[ProgressEvent], None]


def emit(
    callback: ProgressCallback | None,
    stage: str,
    done: int,
    total: int,
    detail: str = "",
    *,
    unit: Unit = "items",
) -> None:
    if callback is not None:
        callback(ProgressEvent(stage=stage, done=done, total=total, detail=detail, unit=unit))


class Meter:
    """One stage counted in bytes, fed from any thread: items that start, grow and end (a
    database being captured, a file being packed), or a stream that reaches a position. Its
    detail is the oldest item still being worked on, so it names what is in progress now,
    never what has already finished."""

    def __init__(self, callback: ProgressCallback | None, stage: str, total: int) -> None:
        self._callback = callback
        self._stage = stage
        self._total = total
        self._finished = 0
        self._position = 0
        self._partial: dict[str, int] = {}  # in start order: dicts keep insertion order
        self._streaming = ""  # what a stream is in now
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self._callback is not None

    def begin(self, what: str) -> None:
        with self._lock:
            self._partial[what] = 0
            self._emit(what)

    def step(self, what: str, so_far: int) -> None:
        with self._lock:
            self._partial[what] = so_far
            self._emit(next(iter(self._partial), what))

    def end(self, what: str, size: int) -> None:
        with self._lock:
            self._partial.pop(what, None)
            self._finished += size
            self._emit(next(iter(self._partial), ""))

    def reached(self, position: int, what: str = "") -> None:
        """A stream is `position` bytes in; `what` names what it is in now (else the same)."""
        with self._lock:
            self._position = position
            self._streaming = what or self._streaming
            self._emit(self._streaming)

    def grow(self, n: int) -> None:
        """The total turned out `n` bytes larger (or, negative, smaller) than announced."""
        with self._lock:
            self._total += n

    def finish(self) -> None:
        with self._lock:
            self._partial.clear()
            self._finished = self._total
            self._position = 0
            self._streaming = ""
            self._emit("")

    def _emit(self, detail: str) -> None:
        done = min(self._position + self._finished + sum(self._partial.values()), self._total)
        emit(self._callback, self._stage, done, self._total, detail, unit="bytes")
