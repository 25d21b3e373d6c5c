"""`status --prometheus FILE`: the status as a node_exporter textfile-collector file.

Written atomically (temp file, fsync, rename), so the collector never reads half a file, and
mode 0644, so node_exporter running as its own user can read it. The metrics carry the state
dir as a label: several gateways on one host each write their own file.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..fsutil import atomic_write
from .status import StatusReport

_METRICS = (
    ("backupkit_status_ok", "gauge", "1 when status finds nothing wrong, else 0"),
    ("backupkit_last_run_success", "gauge", "1 when the last backup run succeeded, else 0"),
    (
        "backupkit_last_success_timestamp_seconds",
        "gauge",
        "when the newest good backup was taken (Unix time)",
    ),
    (
        "backupkit_last_verify_success",
        "gauge",
        "1 when the newest good archive's last check passed, 0 when it failed",
    ),
    ("backupkit_archives", "gauge", "archives of this state dir on disk"),
    ("backupkit_archive_bytes", "gauge", "bytes of this state dir's archives on disk"),
)
_REMOTE_METRICS = (
    ("backupkit_remote_status_ok", "gauge", "1 when the remote copies are fresh and proven"),
    (
        "backupkit_remote_last_upload_success",
        "gauge",
        "1 when the last upload to the remote succeeded, else 0",
    ),
    (
        "backupkit_remote_last_success_timestamp_seconds",
        "gauge",
        "when the newest proven remote copy was taken (Unix time)",
    ),
    ("backupkit_remote_copies", "gauge", "this state dir's copies in the remote"),
    ("backupkit_remote_bytes", "gauge", "bytes of this state dir's copies in the remote"),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(report: StatusReport, state_dir: Path) -> str:
    labels = f'{{state_dir="{_label(os.fspath(state_dir))}"}}'
    good = report.last_good
    values: dict[str, float | None] = {
        "backupkit_status_ok": 1.0 if report.ok else 0.0,
        "backupkit_last_run_success": None
        if report.last_run_status is None
        else float(report.last_run_status == "ok"),
        "backupkit_last_success_timestamp_seconds": good.created_at.timestamp() if good else None,
        "backupkit_last_verify_success": None
        if good is None or good.last_check is None
        else float(good.last_check.ok),
        "backupkit_archives": float(report.archives),
        "backupkit_archive_bytes": float(report.archive_bytes),
    }
    lines = _lines(_METRICS, values, labels)
    remote = report.remote
    if remote is not None:
        remote_labels = f'{labels[:-1]},remote="{_label(remote.remote)}"}}'
        newest = remote.newest
        remote_values: dict[str, float | None] = {
            "backupkit_remote_status_ok": 1.0 if remote.ok else 0.0,
            "backupkit_remote_last_upload_success": None
            if remote.last_upload_status is None
            else float(remote.last_upload_status == "remote-ok"),
            "backupkit_remote_last_success_timestamp_seconds": newest.created_at.timestamp()
            if newest
            else None,
            "backupkit_remote_copies": float(remote.copies),
            "backupkit_remote_bytes": float(remote.bytes),
        }
        lines += _lines(_REMOTE_METRICS, remote_values, remote_labels)
    return "\n".join(lines) + "\n"


def _lines(
    metrics: tuple[tuple[str, str, str], ...], values: dict[str, float | None], labels: str
) -> list[str]:
    lines = []
    for name, kind, text in metrics:
        value = values[name]
        if value is None:
            continue  # unknown is absent, never a number that could read as good or bad
        number = str(int(value)) if value.is_integer() else f"{value:.3f}"
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name}{labels} {number}"]
    return lines


def write_prometheus(path: Path, report: StatusReport, state_dir: Path) -> None:
    atomic_write(path, prometheus_text(report, state_dir).encode(), mode=0o644)
