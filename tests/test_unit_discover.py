"""Discovery on hand-made trees: what a backup would hold, and why each thing is left out."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from backupkit.state.discover import discover
from backupkit.state.layout import layout_for


def _db(path: Path, agent_id: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    if agent_id is not None:
        conn.execute("CREATE TABLE schema_meta (role, schema_version, agent_id)")
        conn.execute("INSERT INTO schema_meta VALUES ('agent', 1, ?)", (agent_id,))
    conn.commit()
    conn.close()
    return path


def _global(state: Path, rows: list[tuple[str, str]]) -> Path:
    path = _db(state / "state" / "openclaw.sqlite")
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE agent_databases (agent_id, path, schema_version, last_seen_at, size_bytes)"
    )
    conn.executemany("INSERT INTO agent_databases (agent_id, path) VALUES (?, ?)", rows)
    conn.commit()
    conn.close()
    return path


def test_databases_are_found_by_place_and_by_registry_and_deduplicated(tmp_path: Path) -> None:
    state = tmp_path / "s"
    inside = _db(state / "agents" / "Main Dir" / "agent" / "openclaw-agent.sqlite")
    outside = _db(tmp_path / "elsewhere" / "ext.sqlite", "ext")
    _global(state, [("main", str(inside)), ("ext", str(outside)), ("main", str(inside))])
    inv = discover(layout_for(state))
    by_path = {d.path: d for d in inv.databases}
    assert set(by_path) == {state / "state" / "openclaw.sqlite", inside, outside}
    assert by_path[inside].role == "agent" and by_path[inside].agent_id == "main"
    assert by_path[outside].archive_path == "external/" + str(outside).lstrip("/")


def test_sidecars_sockets_and_backupkit_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    state = tmp_path / "s"
    db = _db(state / "state" / "openclaw.sqlite")
    Path(f"{db}-wal").write_bytes(b"")
    (state / "backupkit.lock").write_bytes(b"")
    (state / "backupkit-restore.journal.rejected").write_bytes(b"{}")
    inv = discover(layout_for(state))
    reasons = {Path(s.source_path).name: s.reason for s in inv.skipped}
    assert reasons["openclaw.sqlite-wal"] == "wal-sidecar"
    assert reasons["backupkit.lock"] == "lock-file"
    assert reasons["backupkit-restore.journal.rejected"] == "restore-in-progress"
    assert all(not f.archive_path.endswith("-wal") for f in inv.files)


def test_registry_rows_that_are_no_database_are_notes_never_captures(tmp_path: Path) -> None:
    state = tmp_path / "s"
    readable = tmp_path / "passwd-like"
    readable.write_text("root:x:0:0\n")
    a_dir = tmp_path / "a-directory"
    a_dir.mkdir()
    _global(
        state,
        [
            ("text", str(readable)),
            ("dir", str(a_dir)),
            ("nul", "/tmp/with\x00nul"),
            ("newline", "/tmp/with\nnewline"),
            ("gone", str(tmp_path / "missing.sqlite")),
        ],
    )
    inv = discover(layout_for(state))
    assert [d.path for d in inv.databases] == [state / "state" / "openclaw.sqlite"]
    assert len(inv.notes) == 5
    assert {s.reason for s in inv.skipped} >= {"not-a-database", "missing"}


def test_a_global_database_that_cannot_be_read_is_a_note(tmp_path: Path) -> None:
    state = tmp_path / "s"
    (state / "state").mkdir(parents=True)
    (state / "state" / "openclaw.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    inv = discover(layout_for(state))
    assert any("could not read agent_databases" in n for n in inv.notes)
