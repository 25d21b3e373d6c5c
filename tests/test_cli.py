"""The CLI contract: stdout for results, one JSON object with --json, one error line on stderr."""

from __future__ import annotations

from pathlib import Path

from fixtures import StateTree
from tests.conftest import backup_ok, json_out, manifest_of, run_cli, run_cli_process


def test_backup_json_is_one_object_with_the_contract_keys(state: StateTree, out_dir: Path) -> None:
    proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json_out(proc)
    assert {"backup_id", "archive", "status", "size_bytes", "databases"} <= set(result)
    assert result["status"] == "ok"
    assert Path(result["archive"]).stat().st_size == result["size_bytes"]
    assert len(result["databases"]) == len(manifest_of(Path(result["archive"]))["databases"])


def test_backup_prints_the_archive_path_and_quiet_silences_stderr(
    state: StateTree, out_dir: Path
) -> None:
    proc = run_cli("--state-dir", state.root, "-q", "backup", "--output", out_dir)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert Path(proc.stdout.strip()).name.startswith("openclaw-backup-")


def test_python_dash_m_and_the_state_dir_env_var_work(state: StateTree, out_dir: Path) -> None:
    proc = run_cli_process(
        "backup", "--output", out_dir, env={"OPENCLAW_STATE_DIR": str(state.root)}
    )
    assert proc.returncode == 0, proc.stderr


def test_show_prints_the_manifest_readably_and_as_json(state: StateTree, out_dir: Path) -> None:
    archive = backup_ok(state, out_dir)
    human = run_cli("show", archive)
    assert human.returncode == 0
    manifest = manifest_of(archive)
    assert manifest["backup_id"] in human.stdout
    assert "retired-agent" in human.stdout
    as_json = run_cli("show", archive, "--json")
    assert json_out(as_json) == {"ok": True, "archive": str(archive), **manifest}


def test_show_of_a_missing_or_foreign_file_exits_2(tmp_path: Path) -> None:
    missing = run_cli("show", tmp_path / "nope.tar.zst")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    foreign = run_cli("show", text)
    assert foreign.returncode == 2 and "not a backupkit archive" in foreign.stderr
    assert len(foreign.stderr.strip().splitlines()) == 1


def test_verbose_shows_a_traceback_on_error(tmp_path: Path) -> None:
    proc = run_cli("-v", "--state-dir", tmp_path / "missing", "backup")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
