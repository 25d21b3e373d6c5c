"""The README leads an operator in the order they need it: install, a quick start, then the
three uses (scheduled backups, pre-migration snapshots, disaster recovery), then the set-up
for working on backupkit itself; the runbook installs backupkit the same way."""

from __future__ import annotations

from .conftest import REPO


def _headings(text: str) -> list[str]:
    return [line.removeprefix("## ") for line in text.splitlines() if line.startswith("## ")]


def test_the_readme_starts_with_install_quick_start_and_the_three_uses_in_order() -> None:
    assert _headings((REPO / "README.md").read_text())[:6] == [
        "Install",
        "Quick start",
        "Scheduled backups",
        "Pre-migration safety snapshots",
        "Disaster-recovery restores",
        "Development set-up",
    ]


def test_the_install_offers_pipx_and_uv_from_a_checkout_or_a_wheel() -> None:
    readme = (REPO / "README.md").read_text()
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    for command in ("pipx install .", "uv tool install .", "pip wheel", ".whl"):
        assert command in install, command


def test_the_disaster_recovery_runbook_begins_by_installing_backupkit() -> None:
    runbook = (REPO / "docs" / "disaster-recovery.md").read_text()
    first = _headings(runbook)[0]
    assert first.startswith("0. Install backupkit")
    assert "pipx install" in runbook.split("## 1.", 1)[0]
