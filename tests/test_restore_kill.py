"""An in-place restore killed at any moment ends, after the next run, old or new: never a mix."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import orjson
import pytest

from fixtures import build_state
from tests.conftest import ForkedCli, damage_state, fingerprint, run_cli, seeded_spread


def _phase(journal: Path) -> str | None:
    """The phase the in-place restore journal records (it is rewritten atomically before each
    phase: staging, swapping, committed); None while there is none."""
    try:
        return orjson.loads(journal.read_bytes())["phase"]
    except FileNotFoundError:
        return None


def _trials(tmp_path: Path, seed: int, count: int) -> list[str]:
    state = build_state(tmp_path / "openclaw", bytes_per_agent=1 << 20, with_socket=False)
    out = tmp_path / "backups"
    new = (fingerprint(state.root), fingerprint(state.external_dir))
    archive = Path(
        run_cli("--state-dir", state.root, "-q", "backup", "--output", out).stdout.strip()
    )
    damage_state(state)
    old = (fingerprint(state.root), fingerprint(state.external_dir))
    template = tmp_path / "template"
    shutil.copytree(state.root, template / "state", symlinks=True)
    shutil.copytree(state.external_dir, template / "external", symlinks=True)
    journal = state.root / "backupkit-restore.journal"
    # Each run is a child forked from this process: a real process to kill, whose every moment
    # is the restore's own work rather than an interpreter starting.
    args = [
        "--state-dir",
        os.fspath(state.root),
        "restore",
        os.fspath(archive),
        "--in-place",
        "--output",
        os.fspath(out),
    ]

    # One unhurried run to time it: overall, from the journal's appearance to the end (staging,
    # swapping, clean-up: short next to the safety snapshot before them), and from the swap's
    # start to the end.
    started = time.monotonic()
    probe = ForkedCli(*args)
    journal_at = swap_at = None
    while probe.poll() is None:
        phase = _phase(journal)
        if journal_at is None and phase is not None:
            journal_at = time.monotonic()
        if swap_at is None and journal_at is not None and phase != "staging":
            swap_at = time.monotonic()
        time.sleep(0.0005)
    assert probe.returncode == 0
    ended = time.monotonic()
    full = ended - started
    tail = ended - (journal_at or started)
    swap_tail = ended - (swap_at or ended)

    # Half the trials are killed anywhere in the run, a quarter from the journal's first write
    # and a quarter from the swap's start, each group spread over its span in equal slices with
    # one seeded kill in each. The first slice of the whole run lands in the safety snapshot and
    # ends old; a kill once the journal left `staging` ends new (the swap is rolled forward).
    rng = random.Random(seed)
    anywhere = iter(seeded_spread(rng, len(range(0, count, 2)), full))
    from_journal = iter(seeded_spread(rng, len(range(1, count, 4)), tail * 1.2))
    from_swap = iter(seeded_spread(rng, len(range(3, count, 4)), swap_tail * 1.2))
    outcomes = []
    for trial in range(count):
        for live, saved in ((state.root, "state"), (state.external_dir, "external")):
            shutil.rmtree(live)
            shutil.copytree(template / saved, live, symlinks=True)
        proc = ForkedCli(*args)
        if trial % 2 == 0:  # anywhere in the run, the safety snapshot included
            time.sleep(next(anywhere))
        else:  # from the journal's first write (or the swap's start) to past the end
            deadline = time.monotonic() + 30
            while _phase(journal) is None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.0005)
            if trial % 4 == 1:
                time.sleep(next(from_journal))
            else:
                while _phase(journal) == "staging" and proc.poll() is None:
                    time.sleep(0.0005)
                time.sleep(next(from_swap))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after_run = run_cli("--state-dir", state.root, "backup", "--output", out)
        assert after_run.returncode == 0, after_run.stderr
        now = (fingerprint(state.root), fingerprint(state.external_dir))
        assert now in (old, new), f"trial {trial}: a mix of old and new state"
        outcomes.append("new" if now == new else "old")
    return outcomes


def test_killed_in_place_restores_end_old_or_new_after_the_next_run(tmp_path: Path) -> None:
    outcomes = _trials(tmp_path, seed=7, count=10)
    assert len(outcomes) == 10
    assert {"old", "new"} <= set(outcomes), f"the trials should have hit both sides: {outcomes}"


@pytest.mark.slow
def test_killed_in_place_restores_many_seeded_trials(tmp_path: Path) -> None:
    outcomes = _trials(tmp_path, seed=2026, count=80)
    print(
        f"in-place restore kill trials: {len(outcomes)}, old {outcomes.count('old')}, "
        f"new {outcomes.count('new')}"
    )
    assert {"old", "new"} <= set(outcomes), "the trials should have hit both sides"
