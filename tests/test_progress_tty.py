"""The progress display, as a person at a 60-column terminal sees it: each phase drawn with its
bytes and percentage, never wider than the terminal, gone before the verdict prints; and nothing
at all with -q or when stderr is not a terminal. The terminal is a real pseudo terminal; what it
shows is read back through a terminal emulator (pyte)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

import pyte
import pytest

from backupkit.cli.render import progress_line
from fixtures import StateTree, build_state

from .conftest import cli_env, run_cli

COLUMNS, ROWS = 60, 24
PHASES = ("discover", "capture", "pack", "read-back", "verify", "restore", "record")
BAR = re.compile("[━─]")
# A phase line: its name, then its bar or its percentage.
PROGRESS_ROW = re.compile(rf"^(?:{'|'.join(PHASES)}) +(?:[━─]|\d+%)")


@dataclass
class Terminal:
    code: int
    raw: bytes
    frames: list[list[str]]  # the screen after each redraw, top row first

    @property
    def final(self) -> list[str]:
        return [row.rstrip() for row in self.frames[-1] if row.strip()]

    def phase_rows(self, phase: str) -> list[str]:
        return [row for frame in self.frames for row in frame if row.startswith(phase)]


def in_terminal(*args: str | os.PathLike[str]) -> Terminal:
    """Run `python -m backupkit ARGS` with stdin, stdout and stderr on a pseudo terminal of
    COLUMNS x ROWS, and replay what it wrote through a terminal emulator."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {k: v for k, v in cli_env().items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        [sys.executable, "-m", "backupkit", *map(os.fspath, args)],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    raw = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    os.close(leader)
    code = proc.wait(timeout=120)
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    frames = []
    for piece in re.split(rb"(?=\r)", bytes(raw)):
        stream.feed(piece)
        frames.append(list(screen.display))
    return Terminal(code, bytes(raw), frames)


@pytest.fixture(scope="module")
def sized(tmp_path_factory: pytest.TempPathFactory) -> StateTree:
    root = tmp_path_factory.mktemp("tty")
    return build_state(root / "openclaw", agents=4, bytes_per_agent=1 << 20, with_socket=False)


@pytest.fixture(scope="module")
def backup_on_a_terminal(sized: StateTree, tmp_path_factory: pytest.TempPathFactory) -> Terminal:
    out = tmp_path_factory.mktemp("tty-out")
    shown = in_terminal("--state-dir", sized.root, "backup", "--output", out)
    assert shown.code == 0, shown.raw
    return shown


def _has_bytes_and_percent(row: str) -> bool:
    return re.search(r"\d+%", row) is not None and re.search(r"\d (B|KiB|MiB)\b", row) is not None


@pytest.mark.parametrize("phase", ["capture", "pack", "read-back"])
def test_a_backup_draws_each_phase_with_its_bytes_and_percentage(
    backup_on_a_terminal: Terminal, phase: str
) -> None:
    rows = backup_on_a_terminal.phase_rows(phase)
    assert any(_has_bytes_and_percent(r) for r in rows), rows
    assert any("100%" in r for r in rows), "the phase is seen to end"


def test_capture_names_a_database_while_it_is_captured(backup_on_a_terminal: Terminal) -> None:
    rows = backup_on_a_terminal.phase_rows("capture")
    assert any(r.rstrip().endswith(".sqlite") for r in rows if "100%" not in r), rows


def test_no_progress_row_is_wider_than_the_terminal(backup_on_a_terminal: Terminal) -> None:
    # A row wider than the terminal wraps: its tail starts the next row with no phase name.
    drawn = [r.rstrip() for f in backup_on_a_terminal.frames for r in f if r.strip()]
    strays = [r for r in drawn if not r.startswith(PHASES) and (BAR.search(r) or "%" in r)]
    assert strays == []
    assert [r for r in drawn if PROGRESS_ROW.match(r) and len(r) >= COLUMNS] == []


def test_the_final_screen_holds_the_verdict_and_no_progress(
    backup_on_a_terminal: Terminal,
) -> None:
    final = backup_on_a_terminal.final
    text = "".join(final)
    assert re.search(r"openclaw-backup-\S+\.tar\.zst", text)
    assert "verified" in text
    assert [r for r in final if PROGRESS_ROW.match(r) or BAR.search(r) or "%" in r] == []
    assert backup_on_a_terminal.raw.endswith(b"\r\n"), "the cursor ends on a new line"


def test_verify_draws_its_bytes_then_prints_its_verdict_on_a_clean_screen(
    sized: StateTree, tmp_path: Path
) -> None:
    proc = run_cli("--state-dir", sized.root, "backup", "--output", tmp_path)
    archive = proc.stdout.strip()
    shown = in_terminal("verify", archive, "--no-record")
    assert shown.code == 0, shown.raw
    assert any(_has_bytes_and_percent(r) for r in shown.phase_rows("verify"))
    verdict = [r for r in shown.final if "OK:" in r or "members checked" in r]
    assert verdict and [r for r in shown.final if PROGRESS_ROW.match(r) or BAR.search(r)] == []


def test_quiet_draws_nothing_on_a_terminal(sized: StateTree, tmp_path: Path) -> None:
    shown = in_terminal("--state-dir", sized.root, "backup", "--output", tmp_path, "-q")
    assert shown.code == 0, shown.raw
    assert b"\x1b[" not in shown.raw
    assert re.fullmatch(rb"\S+\.tar\.zst\r\n", shown.raw)


def test_nothing_is_drawn_when_stderr_is_not_a_terminal(sized: StateTree, tmp_path: Path) -> None:
    proc = run_cli("--state-dir", sized.root, "backup", "--output", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and "capture" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1  # the summary, nothing else


def test_a_wide_line_says_rate_and_eta_beside_the_bar() -> None:
    line = progress_line(
        "pack",
        6_606_028,
        15_728_640,
        "bytes",
        speed=3.1 * 2**20,
        remaining=3.2,
        detail="state/agents/main/agent/openclaw-agent.sqlite",
        width=120,
    )
    assert line.startswith("pack") and BAR.search(line)
    assert "42% 6.3/15.0 MiB 3.1 MiB/s ETA 3.2s" in line
    assert line.endswith("openclaw-agent.sqlite")


def test_a_narrow_line_keeps_the_file_name_and_drops_the_bar() -> None:
    line = progress_line(
        "capture",
        6_606_028,
        15_728_640,
        "bytes",
        speed=3.1 * 2**20,
        remaining=3.2,
        detail="state/agents/Retired Agent/agent/openclaw-agent.sqlite",
        width=COLUMNS,
    )
    assert len(line) < COLUMNS and not BAR.search(line)
    assert "42% 6.3/15.0 MiB" in line and line.endswith(".sqlite") and "…" in line


def test_a_restore_draws_its_verify_and_restore_phases_then_only_its_result(
    sized: StateTree, tmp_path: Path
) -> None:
    proc = run_cli("--state-dir", sized.root, "backup", "--output", tmp_path / "out")
    archive = proc.stdout.strip()
    shown = in_terminal("restore", archive, "--target", tmp_path / "drill", "--agent", "main")
    assert shown.code == 0, shown.raw
    for phase in ("verify", "restore"):
        assert any(_has_bytes_and_percent(r) for r in shown.phase_rows(phase)), phase
    assert "restore target did" in "".join(shown.final)
    assert [r for r in shown.final if PROGRESS_ROW.match(r) or BAR.search(r)] == []
