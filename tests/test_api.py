"""The library API that a migration tool calls: typed results, no printing, progress by callback."""

from __future__ import annotations

from pathlib import Path

import pytest

import backupkit
from fixtures import StateTree


def test_create_backup_returns_a_typed_result_and_prints_nothing(
    state: StateTree, out_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events: list[backupkit.ProgressEvent] = []
    result = backupkit.create_backup(
        state.root, output=out_dir, reason="api", progress=events.append
    )
    assert isinstance(result, backupkit.BackupResult)
    assert result.status == "ok" and result.ok
    assert result.archive.is_file() and result.archive.parent == out_dir
    assert result.backup_id == result.manifest.backup_id
    assert result.manifest.reason == "api"
    assert result.verified is True and result.recorded is True
    assert capsys.readouterr() == ("", "")
    assert {"discover", "capture", "pack", "read-back", "record"} <= {e.stage for e in events}


def test_errors_carry_their_exit_code(tmp_path: Path) -> None:
    with pytest.raises(backupkit.BackupError) as info:
        backupkit.create_backup(tmp_path / "missing", output=tmp_path / "out")
    assert info.value.exit_code == 2
    assert isinstance(info.value, backupkit.InputError)


def test_state_dir_none_follows_the_environment(
    state: StateTree, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(state.root))
    monkeypatch.setenv("BACKUPKIT_DIR", str(out_dir))
    result = backupkit.create_backup()
    assert result.archive.parent == out_dir
    assert result.manifest.state_dir == str(state.root)


def test_default_output_is_beside_the_state_dir(
    state: StateTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKUPKIT_DIR", raising=False)
    result = backupkit.create_backup(state.root)
    assert result.archive.parent == state.root.parent / f"{state.root.name}-backups"


def test_verify_archive_reports_ok_with_per_database_results(
    state: StateTree, out_dir: Path
) -> None:
    result = backupkit.create_backup(state.root, output=out_dir, verify=False)
    report = backupkit.verify_archive(result.archive, record=False)
    assert report.ok and report.defects == []
    assert {d["archive_path"] for d in report.databases} == {
        d.archive_path for d in result.manifest.databases
    }
    assert all(d["integrity"] == "ok" for d in report.databases)
