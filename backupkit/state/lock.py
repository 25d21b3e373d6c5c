"""One backup per state dir at a time.

`flock` on `<state>/backupkit.lock`: the kernel drops it when the holder dies, however it dies,
so a killed run never blocks the next one. The file itself stays (removing a lock file races with
the next locker); discovery leaves it out of every archive.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import BusyError, from_os_error

POLL_S = 0.1


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


@contextlib.contextmanager
def state_lock(lock_path: Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the backup lock of a state dir; exit 3 at once, or after `wait` seconds."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise from_os_error(err, "creating the backup lock") from err
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait:g}s" if wait > 0 else ""
                    raise BusyError(
                        f"another backup of {lock_path.parent} is running{_holder(fd)}{waited}: "
                        "retry later or pass --wait SECONDS"
                    ) from None
                time.sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
