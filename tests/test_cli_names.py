"""Names people type: archives by id, prefix or `latest`; global options after the command; one
JSON object on stdout even when a command fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures import StateTree, build_state

from .conftest import json_out, run_cli


@pytest.fixture
def two(tmp_path: Path) -> tuple[StateTree, list[Path]]:
    state = build_state(tmp_path / "openclaw", agents=1, bytes_per_agent=4096, with_socket=False)
    archives = []
    for _ in range(2):
        proc = run_cli("--state-dir", state.root, "backup")
        assert proc.returncode == 0, proc.stderr
        archives.append(Path(proc.stdout.strip()))
    return state, archives


def test_latest_and_a_backup_id_name_this_state_dirs_archives(
    two: tuple[StateTree, list[Path]],
) -> None:
    state, archives = two
    latest = json_out(
        run_cli("--state-dir", state.root, "verify", "latest", "--no-record", "--json")
    )
    assert latest["archive"] == str(archives[-1])
    first_id = archives[0].name.removeprefix("openclaw-backup-").removesuffix(".tar.zst")
    shown = json_out(run_cli("--state-dir", state.root, "show", first_id, "--json"))
    assert shown["backup_id"] == first_id
    unique = first_id[: len(first_id) - 4]
    other_id = archives[1].name.removeprefix("openclaw-backup-").removesuffix(".tar.zst")
    if other_id.startswith(unique):
        unique = first_id  # both were taken in the same second with close suffixes
    assert (
        json_out(run_cli("--state-dir", state.root, "show", unique, "--json"))["backup_id"]
        == first_id
    )


def test_an_ambiguous_or_unknown_id_is_refused_with_exit_2(
    two: tuple[StateTree, list[Path]],
) -> None:
    state, _archives = two
    ambiguous = run_cli("--state-dir", state.root, "show", "20")
    assert ambiguous.returncode == 2 and "more than one archive" in ambiguous.stderr
    unknown = run_cli("--state-dir", state.root, "show", "19990101T000000Z-deadbeef")
    assert unknown.returncode == 2 and "has the id" in unknown.stderr


@pytest.mark.parametrize(
    "args",
    [("list", "-q"), ("list", "-v"), ("status", "--quiet"), ("list", "--state-dir", "{state}")],
)
def test_global_options_are_accepted_after_the_command(
    two: tuple[StateTree, list[Path]], args: tuple[str, ...]
) -> None:
    state, _archives = two
    argv = [a.replace("{state}", str(state.root)) for a in args]
    proc = run_cli("--state-dir", state.root, *argv)
    assert proc.returncode == 0, proc.stderr


def test_a_failing_command_with_json_prints_one_json_object(tmp_path: Path) -> None:
    proc = run_cli("--state-dir", tmp_path / "missing", "list", "--json")
    assert proc.returncode == 2
    body = json_out(proc)
    assert body == {"ok": False, "exit_code": 2, "error": body["error"]}
    assert "does not exist" in body["error"]


def test_a_failing_verify_with_json_prints_its_report_and_nothing_more(
    two: tuple[StateTree, list[Path]],
) -> None:
    _state, archives = two
    data = bytearray(archives[0].read_bytes())
    data[300] ^= 0xFF
    archives[0].write_bytes(bytes(data))
    proc = run_cli("verify", archives[0], "--no-record", "--json")
    assert proc.returncode == 1
    assert json_out(proc)["ok"] is False
