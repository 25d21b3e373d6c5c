"""Is a database in use by another process? Judged from the kernel's lock table.

Reading /proc/locks needs no descriptor on the file, which matters: closing one would drop
SQLite's own POSIX locks in this process.
"""

from __future__ import annotations

import os
from pathlib import Path

# Every connection that has a WAL database open holds a read lock on this byte of its -shm file
# (SQLite's unix VFS "DMS" slot: ((22 + 8) * 4) + 8).
_SHM_DMS_BYTE = 128


def _posix_locks() -> list[tuple[str, int, int, int]] | None:
    """(device "maj:min", inode, start, end) of every POSIX lock on the machine, from
    /proc/locks; None where the kernel does not offer it. Reading the list needs no descriptor
    on the file, which matters: closing one would drop SQLite's own locks in this process."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    locks = []
    for line in text.splitlines():
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) < 8 or parts[1] not in ("POSIX", "OFDLCK"):
            continue
        dev_ino = parts[5].split(":")
        if len(dev_ino) != 3:
            continue
        end = parts[7]
        locks.append(
            (
                f"{int(dev_ino[0], 16)}:{int(dev_ino[1], 16)}",
                int(dev_ino[2]),
                int(parts[6]),
                (1 << 63) if end == "EOF" else int(end),
            )
        )
    return locks


def wal_in_use(db: Path) -> bool | None:
    """True when some process (another one: the kernel lists ours too) has this WAL database
    open, judged by the lock every connection keeps on its -shm file; None if unknowable."""
    try:
        st = os.stat(f"{db}-shm")
    except FileNotFoundError:
        return False
    locks = _posix_locks()
    if locks is None:
        return None
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    return any(
        d == dev and ino == st.st_ino and start <= _SHM_DMS_BYTE <= end
        for d, ino, start, end in locks
    )


def open_elsewhere(paths: list[Path]) -> set[Path]:
    """Those of `paths` that another process has open, found by the file descriptors in
    /proc/*/fd. This sees an idle connection to a rollback-journal database, which holds no
    lock at all between transactions; processes of other users are seen only by root."""
    wanted: dict[tuple[int, int], Path] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        wanted[(st.st_dev, st.st_ino)] = path
    found: set[Path] = set()
    me = str(os.getpid())
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit() and p != me]
    except OSError:
        return found
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's process
        for fd in fds:
            try:
                st = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            hit = wanted.get((st.st_dev, st.st_ino))
            if hit is not None:
                found.add(hit)
    return found
