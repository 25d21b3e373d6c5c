"""Interrupted restores say truly where the state stands: SIGTERM and SIGINT in every phase of an
in-place restore end old or new, and the message says which; a killed --target restore leaves
a directory marked as incomplete, which no later command takes for a state."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from fixtures import StateTree, build_state

from .conftest import fingerprint, run_cli, start_cli

COMPLETED = "the swap was completed"
ROLLED_BACK = "the state is as it was"
NEITHER_SAID = "nothing is left half-done"


def _change(state: StateTree) -> None:
    conn = sqlite3.connect(state.agent_dbs["main"])
    conn.execute("DELETE FROM session_entries")
    conn.commit()
    conn.close()
    state.config_path.write_text('{"changed": true}\n')


def _trials(
    tmp_path: Path, sig: signal.Signals, count: int, seed: int, *, at_journal: float = 0.05
) -> list[str]:
    """Odd trials are signalled within `at_journal` seconds of the journal's first write
    (staging, or the swap), even ones anywhere in the run."""
    state = build_state(tmp_path / "openclaw", bytes_per_agent=256 << 10, with_socket=False)
    out = tmp_path / "out"
    new = fingerprint(state.root)
    archive = Path(
        run_cli("--state-dir", state.root, "-q", "backup", "--output", out).stdout.strip()
    )
    journal = state.root / "backupkit-restore.journal"
    rng = random.Random(seed)
    said = []
    for trial in range(count):
        _change(state)
        old = fingerprint(state.root)
        proc = start_cli(
            "--state-dir", state.root, "restore", archive, "--in-place", "--output", out
        )
        if trial % 2:  # once the journal exists: staging or swapping
            deadline = time.monotonic() + 30
            while not journal.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, at_journal))
        else:  # anywhere, the safety snapshot included
            time.sleep(rng.uniform(0, 0.6))
        proc.send_signal(sig)
        _stdout, stderr = proc.communicate()
        now = fingerprint(state.root)
        if proc.returncode == 0:
            assert now == new
            said.append("finished")
            continue
        if proc.returncode == -sig:
            # Killed by the signal itself: before the interpreter set its handler up, or after
            # the run had finished, while the interpreter was exiting. It said nothing, and the
            # state is one or the other.
            assert now in (old, new)
            said.append("not started" if now == old else "finished")
            continue
        assert proc.returncode == 4, stderr
        if COMPLETED in stderr:
            assert now == new, f"trial {trial}: said completed, state is not the archive's"
            said.append("completed")
        elif ROLLED_BACK in stderr:
            assert now == old, f"trial {trial}: said unchanged, state changed"
            said.append("unchanged")
        else:
            # Interrupted before the restore began (the safety snapshot), or after it returned:
            # the message claims neither, and the state is one or the other, never a mix.
            assert NEITHER_SAID in stderr, stderr
            assert now in (old, new)
            said.append("unchanged" if now == old else "finished")
        assert not journal.exists(), "nothing is left for the next run to finish"
        assert not list(state.root.rglob(".bk-restore-*")), "no file under a temporary name"
    return said


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_in_place_restore_says_truly_whether_it_is_old_or_new(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # Signalled as the journal appears, a restore is staging: it must roll back and say so.
    said = _trials(tmp_path, sig, count=4, seed=11, at_journal=0.0)
    assert len(said) == 4
    assert said[1] == said[3] == "unchanged", said


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_many_interrupted_in_place_restores_hit_every_outcome(
    tmp_path: Path, sig: signal.Signals
) -> None:
    said = _trials(tmp_path, sig, count=40, seed=2026)
    print(f"{sig.name}: " + ", ".join(f"{o} {said.count(o)}" for o in sorted(set(said))))
    assert {"unchanged", "completed"} <= set(said)


def test_a_killed_target_restore_is_marked_incomplete_and_never_taken_for_a_state(
    tmp_path: Path,
) -> None:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=1 << 20, with_socket=False)
    archive = Path(
        run_cli(
            "--state-dir", state.root, "-q", "backup", "--output", tmp_path / "o"
        ).stdout.strip()
    )
    for attempt in range(5):
        target = tmp_path / f"restored-{attempt}"
        mark = target / ".backupkit-restore-incomplete"
        proc = start_cli("restore", archive, "--target", target)
        while not mark.exists() and proc.poll() is None:
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if mark.exists():
            break
    else:
        pytest.fail("every restore finished before it could be killed")
    backup = run_cli("--state-dir", target, "backup", "--output", tmp_path / "o2")
    assert backup.returncode == 2 and "never finished" in backup.stderr
    again = run_cli("restore", archive, "--target", target)
    assert again.returncode == 2 and "never finished" in again.stderr
    done = run_cli("restore", archive, "--target", tmp_path / "fresh")
    assert done.returncode == 0
    assert not (tmp_path / "fresh" / ".backupkit-restore-incomplete").exists()
