"""The demo behind scripts/demo: a sample OpenClaw state, backed up, verified and restored."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.fspath(ROOT))

from backupkit.sqlite.connect import sqlite_uri  # noqa: E402
from fixtures import build_state  # noqa: E402


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(*args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [os.fspath(a) for a in args]
    shown = " ".join(shlex.quote(c) for c in cmd).replace(
        sys.executable + " -m backupkit", "backupkit"
    )
    print(f"$ {shown}", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout.strip()
    if out:
        lines = out.splitlines()
        for line in lines[:40]:
            print(f"  {line}")
        if len(lines) > 40:
            print(f"  ... ({len(lines) - 40} more lines)")
    for line in proc.stderr.strip().splitlines():
        print(f"  [stderr] {line}")
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: step failed with exit {proc.returncode}")
    print(f"  (exit {proc.returncode})")
    return proc


def _read(db: Path, query: str, params: tuple[object, ...] = ()) -> list[tuple]:
    """Query a database as SQLite sees it, WAL included, without touching the live files: a
    private copy of the main file and its -wal is opened (opening the live WAL read-only would
    create -shm beside it, and immutable=1 would ignore the WAL altogether)."""
    with tempfile.TemporaryDirectory(prefix="backupkit-demo-read-") as tmp:
        copy = Path(tmp) / "db.sqlite"
        shutil.copyfile(db, copy)
        if Path(f"{db}-wal").exists():
            shutil.copyfile(f"{db}-wal", f"{copy}-wal")
        conn = sqlite3.connect(sqlite_uri(copy, mode="ro"), uri=True)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()


def rows(db: Path) -> dict[str, list[tuple]]:
    names = [
        r[0]
        for r in _read(
            db, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: sorted(_read(db, f'SELECT * FROM "{n}"'), key=repr) for n in names}


def wal_only_row(db: Path, table: str, key: str) -> tuple | None:
    """The row the fixture committed after the last checkpoint (it lives only in the -wal)."""
    column = "key" if table == "kv" else "session_key"
    found = _read(db, f'SELECT * FROM "{table}" WHERE {column} = ?', (key,))
    return found[0] if found else None


def _main_file_has(db: Path, table: str, key: str) -> str:
    """Whether the main file alone (the WAL ignored: immutable) holds the row."""
    column = "key" if table == "kv" else "session_key"
    conn = sqlite3.connect(sqlite_uri(db, mode="ro", immutable="1"), uri=True)
    try:
        found = conn.execute(f'SELECT 1 FROM "{table}" WHERE {column} = ?', (key,)).fetchone()
    finally:
        conn.close()
    return "yes" if found else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--workdir", type=Path, help="keep the demo files here (default: a temp dir)"
    )
    parser.add_argument("--agents", type=int, default=6)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="backupkit-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    state = work / "openclaw"
    backups = work / "backups"
    bk = [sys.executable, "-m", "backupkit"]

    step(f"1. A sample OpenClaw state in {state}")
    tree = build_state(state, agents=args.agents, bytes_per_agent=1 << 20)
    wal_only = len(tree.wal_only)
    print(
        f"  {len(tree.agent_dbs)} agent databases (one outside the state dir), a global database,"
    )
    creds, legacy = len(tree.credential_files), len(tree.legacy_files)
    print(f"  {creds} credential files (0600), {legacy} legacy files,")
    print(f"  symlinks, sidecars, and {wal_only} committed rows that live only in -wal files.")
    print("  Those rows, read through SQLite with the WAL (the main files alone do not have them):")
    for db, table, key in tree.wal_only[:3]:
        seen = "yes" if wal_only_row(db, table, key) is not None else "NO"
        in_main = _main_file_has(db, table, key)
        print(f"    {db.name} {table} {key!r}: through SQLite {seen}, main file alone {in_main}")

    step("2. What a backup would capture (dry run: writes nothing)")
    run(*bk, "--state-dir", state, "backup", "--dry-run", "--output", backups)

    step("3. Back it up (checkpoint, VACUUM INTO, one tar+zstd archive, verify, ledger row)")
    proc = run(*bk, "--state-dir", state, "backup", "--output", backups, "--reason", "demo")
    archive = Path(proc.stdout.strip())

    step("4. The archive's manifest")
    run(*bk, "show", archive)

    step("5. Verify it again: every member, every database's integrity_check")
    run(*bk, "--state-dir", state, "verify", archive)

    step("6. Disaster recovery: restore into a fresh directory")
    restored = work / "restored"
    run(*bk, "restore", archive, "--target", restored)
    same = 0
    for agent_id, db in tree.agent_dbs.items():
        if agent_id == "external-agent":
            copy = restored / "external" / os.fspath(db).lstrip("/")
        else:
            copy = restored / db.relative_to(state)
        if rows(copy) != rows(db):
            raise SystemExit(f"demo: restored {copy} differs from the live database")
        same += 1
    print(f"  {same}/{len(tree.agent_dbs)} agent databases equal the live ones row for row.")
    print("  The rows that lived only in the WAL, in the restored copies:")
    for db, table, key in tree.wal_only[:3]:
        copy = restored / db.relative_to(state) if state in db.parents else None
        if copy is None:
            continue
        row = wal_only_row(copy, table, key)
        if row is None or row != wal_only_row(db, table, key):
            raise SystemExit(f"demo: the WAL-only row {key!r} is missing from {copy}")
        print(f"    {copy.relative_to(restored)} {table} {key!r}: {str(row)[:60]}...")
    print("  agent_databases now points at the restored databases:")
    conn = sqlite3.connect(sqlite_uri(restored / "state" / "openclaw.sqlite", mode="ro"), uri=True)
    for agent_id, path in conn.execute("SELECT agent_id, path FROM agent_databases LIMIT 3"):
        print(f"    {agent_id}: {path}")
    conn.close()

    step("7. A bad night: rows deleted, config broken, a legacy file lost; restore in place")
    main_db = tree.agent_dbs["main"]
    conn = sqlite3.connect(main_db)
    lost = conn.execute("DELETE FROM session_entries").rowcount
    conn.commit()
    conn.close()
    tree.config_path.write_text("{ broken")
    tree.legacy_files[0].unlink()
    print(
        f"  deleted {lost} session rows, broke openclaw.json, removed {tree.legacy_files[0].name}"
    )
    run(*bk, "--state-dir", state, "restore", archive, "--in-place", "--dry-run")
    run(*bk, "--state-dir", state, "restore", archive, "--in-place", "--output", backups)
    conn = sqlite3.connect(sqlite_uri(main_db, mode="ro"), uri=True)
    back = conn.execute("SELECT count(*) FROM session_entries").fetchone()[0]
    conn.close()
    print(
        f"  session rows back: {back}; config starts with: "
        f"{tree.config_path.read_text()[:40]!r}; legacy file back: {tree.legacy_files[0].exists()}"
    )

    step("8. The ledger: backup_runs in the live global database")
    conn = sqlite3.connect(f"file:{tree.global_db}?mode=ro", uri=True)
    for run_id, status in conn.execute("SELECT id, status FROM backup_runs ORDER BY created_at"):
        print(f"  {run_id}  {status}")
    conn.close()

    print(f"\ndemo finished; files are in {work}")


if __name__ == "__main__":
    main()
