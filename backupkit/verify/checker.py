"""Database checks in a thread pool, while the archive stream goes on (sqlite3 releases the GIL).

Verify's copies are temporary and bounded in number (`workers + 1` at a time, so temporary disk
stays bounded); restore's spooled files are the restored files themselves, so they are kept and
the stream never waits for a check (`keep=True`).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..sqlite.check import DatabaseCheck, check_database, error_text


def _check_and_remove(path: Path) -> DatabaseCheck:
    try:
        return check_database(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class Checker:
    def __init__(self, tmp: Path, workers: int, *, keep: bool = False) -> None:
        self.tmp = tmp
        self._keep = keep
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check")
        self._window = None if keep else workers + 1
        self._inflight: list[Future[DatabaseCheck]] = []
        self._names: dict[Future[DatabaseCheck], str] = {}
        self.results: dict[str, DatabaseCheck] = {}
        self._n = 0

    def new_path(self) -> Path:
        self._n += 1
        return self.tmp / f"check-{self._n:05d}.sqlite"

    def submit(self, copy: Path, name: str) -> None:
        fut = self._pool.submit(check_database if self._keep else _check_and_remove, copy)
        self._names[fut] = name
        self._inflight.append(fut)
        while self._window is not None and len(self._inflight) >= self._window:
            self._collect(self._inflight.pop(0))

    def _collect(self, fut: Future[DatabaseCheck]) -> None:
        try:
            result = fut.result()
        except Exception as err:  # any failure to check is a failed check, never a crash
            result = DatabaseCheck(f"could not be checked: {error_text(err)}")
        self.results[self._names[fut]] = result

    def finish(self) -> dict[str, DatabaseCheck]:
        for fut in self._inflight:
            self._collect(fut)
        self._inflight.clear()
        self._pool.shutdown(wait=True)
        return self.results

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
