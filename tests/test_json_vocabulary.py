"""Every command's `--json` speaks one vocabulary (docs/json.md): `ok` everywhere, a failure's
exit code and error, `status` only for ledger statuses, `*_count` for counts and plurals for
lists, `*_bytes`, `*_at` and `*_seconds`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures import build_state

from .conftest import REPO, S3Server, json_out, make_bucket, run_cli

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
LEDGER_STATUSES = {"ok", "failed", "pruned", "remote-ok", "remote-failed", "remote-started", None}
# The manifest's own counts, fixed by format_version 1 (docs/manifest.schema.json): `show`
# prints them as the archive holds them.
MANIFEST_COUNT_FIELDS = {
    "encryption.recipients",
    "databases.checkpoint.log_frames",
    "databases.checkpoint.checkpointed_frames",
}


def _run_json(*args: str | Path) -> dict[str, Any]:
    return json_out(run_cli(*args))


@pytest.fixture(scope="module")
def outputs(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> dict[str, dict[str, Any]]:
    """One JSON object of each command (and of each failure kind), from one small state."""
    root = tmp_path_factory.mktemp("vocabulary")
    state = build_state(root / "openclaw", agents=2, bytes_per_agent=8192, with_socket=False)
    s = ("--state-dir", str(state.root))
    out = root / "backups"
    key = root / "backup.key"
    got: dict[str, dict[str, Any]] = {}
    got["key new"] = _run_json("key", "new", key, "--json")
    got["backup"] = _run_json(
        *s, "backup", "--output", out, "--encrypt-to", got["key new"]["recipient"], "--json"
    )
    got["backup --dry-run"] = _run_json(*s, "backup", "--output", out, "--dry-run", "--json")
    archive = got["backup"]["archive"]
    ident = ("--identity", str(key))
    got["verify"] = _run_json(*s, "verify", archive, *ident, "--json")
    got["show"] = _run_json(*s, "show", archive, *ident, "--json")
    got["restore --dry-run"] = _run_json(
        *s, "restore", archive, *ident, "--target", root / "drill", "--dry-run", "--json"
    )
    got["restore"] = _run_json(*s, "restore", archive, *ident, "--target", root / "r", "--json")
    got["list"] = _run_json(*s, "list", "--output", out, "--json")
    got["status"] = _run_json(*s, "status", "--output", out, "--json")
    got["prune --dry-run"] = _run_json(
        *s, "prune", "--output", out, "--keep-last", "1", "--dry-run", "--json"
    )
    got["schedule"] = _run_json(*s, "schedule", "--systemd", "--json")
    got["schedule --install --dry-run"] = _run_json(
        *s, "schedule", "--systemd", "--install", "--unit-dir", root / "u", "--dry-run", "--json"
    )
    bucket = make_bucket(s3_server, object_lock=True)
    got["backup --to"] = json_out(
        run_cli(
            *s, "backup", "--output", out, "--to", bucket.url(), "--retention-days", "1", "--json",
            env=bucket.env,
        )
    )  # fmt: skip
    got["push"] = json_out(
        run_cli(*s, "push", archive, "--to", bucket.url("again"), "--json", env=bucket.env)
    )
    got["status (stale)"] = _run_json(*s, "status", "--max-age", "0s", "--json")
    got["list (missing state)"] = _run_json("--state-dir", root / "nowhere", "list", "--json")
    damaged = root / "damaged.tar.zst"
    data = bytearray(Path(archive).read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    got["verify (damaged)"] = _run_json("verify", damaged, *ident, "--no-record", "--json")
    return got


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(dotted path, key, value) of every key in every object, lists included."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{path}.{k}" if path else k
            yield here, k, v
            yield from _walk(v, here)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, path)


def _keys(outputs: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, str, Any]]:
    for command, obj in outputs.items():
        for path, key, value in _walk(obj):
            yield command, path, key, value


def test_every_object_says_ok_as_a_boolean(outputs: dict[str, dict[str, Any]]) -> None:
    assert {c: type(o.get("ok")).__name__ for c, o in outputs.items()} == {
        c: "bool" for c in outputs
    }


def test_a_failure_says_its_exit_code_and_error_in_the_same_object(
    outputs: dict[str, dict[str, Any]],
) -> None:
    failed = {c: o for c, o in outputs.items() if o["ok"] is False}
    assert set(failed) == {"status (stale)", "list (missing state)", "verify (damaged)"}
    assert {c: (o["exit_code"], bool(o["error"])) for c, o in failed.items()} == {
        "status (stale)": (1, True),
        "list (missing state)": (2, True),
        "verify (damaged)": (1, True),
    }
    assert failed["verify (damaged)"]["defects"], "the report itself is kept"


def test_status_holds_only_a_ledger_status(outputs: dict[str, dict[str, Any]]) -> None:
    wrong = [
        (c, p, v)
        for c, p, k, v in _keys(outputs)
        if (k == "status" or k.endswith("_status")) and v not in LEDGER_STATUSES
    ]
    assert wrong == []


def test_a_key_is_a_list_in_every_command_or_in_none(outputs: dict[str, dict[str, Any]]) -> None:
    shapes: dict[str, set[str]] = {}
    for _command, _path, key, value in _keys(outputs):
        if value is not None:
            shapes.setdefault(key, set()).add("list" if isinstance(value, list) else "scalar")
    assert {k: s for k, s in shapes.items() if len(s) > 1} == {}


def test_counts_are_named_count_and_plurals_are_lists(outputs: dict[str, dict[str, Any]]) -> None:
    numeric_plurals = [
        (c, p)
        for c, p, k, v in _keys(outputs)
        if isinstance(v, int)
        and not isinstance(v, bool)
        and k.endswith("s")
        and not k.endswith(("_bytes", "_seconds", "_ns"))
        and not p.startswith("counts.")
        and ".counts." not in p
        and not (c == "show" and p in MANIFEST_COUNT_FIELDS)
    ]
    assert numeric_plurals == []


def test_sizes_are_whole_bytes_named_bytes(outputs: dict[str, dict[str, Any]]) -> None:
    wrong = [
        (c, p, v)
        for c, p, k, v in _keys(outputs)
        if (k.endswith("_bytes") and not (v is None or type(v) is int))
        or ("size" in k and not k.endswith("_bytes"))
    ]
    assert wrong == []
    assert outputs["backup"]["input_bytes"] > 0 and outputs["backup"]["size_bytes"] > 0


def test_times_are_iso_8601_utc_named_at(outputs: dict[str, dict[str, Any]]) -> None:
    times = [(c, p, v) for c, p, k, v in _keys(outputs) if k.endswith("_at")]
    assert {c for c, _p, _v in times} >= {"backup", "show", "list", "status", "prune --dry-run"}
    assert [t for t in times if not (t[2] is None or ISO_UTC.match(t[2]))] == []
    unnamed = [
        (c, p)
        for c, p, k, v in _keys(outputs)
        if isinstance(v, str) and ISO_UTC.match(v) and not k.endswith("_at")
    ]
    assert unnamed == []


def test_durations_are_seconds_named_seconds(outputs: dict[str, dict[str, Any]]) -> None:
    durations = [(c, p, v) for c, p, k, v in _keys(outputs) if k.endswith("_seconds")]
    assert {c for c, _p, _v in durations} >= {"backup", "verify", "status"}
    assert [d for d in durations if not (d[2] is None or isinstance(d[2], int | float))] == []
    bare = [(c, p) for c, p, k, _v in _keys(outputs) if k in {"seconds", "age", "elapsed"}]
    assert bare == []


def test_dry_runs_say_dry_run_true(outputs: dict[str, dict[str, Any]]) -> None:
    runs = {c: o.get("dry_run") for c, o in outputs.items() if "--dry-run" in c}
    assert runs == {c: True for c in runs} and len(runs) == 4


def test_every_top_level_key_is_named_in_docs_json_md(outputs: dict[str, dict[str, Any]]) -> None:
    documented = set(re.findall(r"`([a-z0-9_]+)`", (REPO / "docs" / "json.md").read_text()))
    missing = {(c, k) for c, o in outputs.items() if c != "show" for k in o if k not in documented}
    assert missing == set()
