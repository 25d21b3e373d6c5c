"""Property: any state tree (odd names, empty databases, zero-byte files, deep trees, many agents)
comes back exactly from backup + restore --target."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backupkit
from tests.conftest import fingerprint

RESERVED_SUFFIXES = ("-wal", "-shm", "-journal", ".lock", ".pid", ".sqlite", ".sock")

name_chars = st.characters(
    codec="utf-8", exclude_characters="/\x00", exclude_categories=("Cs", "Cc")
)
names = st.text(name_chars, min_size=1, max_size=24).filter(
    lambda n: (
        n not in (".", "..")
        and not n.endswith(RESERVED_SUFFIXES)
        and not n.startswith((".bk-restore-", ".backupkit-restore-", "backupkit"))
        and len(n.encode()) < 200
    )
)


@st.composite
def state_trees(draw: st.DrawFn) -> dict:
    files = draw(
        st.dictionaries(
            st.lists(names, min_size=1, max_size=6).map(tuple),
            st.binary(max_size=2048),
            max_size=12,
        )
    )
    agents = draw(
        st.dictionaries(
            names,
            st.one_of(
                st.none(),
                st.lists(
                    st.tuples(st.integers(-(2**63), 2**63 - 1), st.text(max_size=40)), max_size=20
                ),
            ),
            max_size=5,
        )
    )
    return {"files": files, "agents": agents}


def _build(root: Path, spec: dict) -> None:
    root.mkdir()
    for agent, rows in spec["agents"].items():
        db = root / "agents" / agent / "agent" / "openclaw-agent.sqlite"
        db.parent.mkdir(parents=True, exist_ok=True)
        if rows is None:
            db.write_bytes(b"")  # an empty database: SQLite reads a zero-byte file as one
            continue
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t(k INTEGER, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
        conn.commit()
        conn.close()
    for parts, data in spec["files"].items():
        path = root.joinpath("files", *parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_dir():
                continue
            path.write_bytes(data)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            continue  # one generated path is a prefix of another: keep the first


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state_trees())
def test_any_state_tree_round_trips_exactly(spec: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        state = base / "state dir ü"
        _build(state, spec)
        before = fingerprint(state)
        result = backupkit.create_backup(state, output=base / "out")
        assert result.ok, result.problems
        target = base / "restored"
        backupkit.restore_archive(result.archive, target=target)
        assert fingerprint(target) == before
        assert sorted(os.listdir(base / "out")) == [result.archive.name]
