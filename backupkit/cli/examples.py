"""The examples at the end of each command's --help: what an operator types most often."""

from __future__ import annotations

_EXAMPLES: dict[str, list[str]] = {
    "backupkit": [
        "backupkit backup                                # archive ~/.openclaw, verified",
        "backupkit list                                  # what there is, newest first",
        "backupkit verify latest                         # prove the newest restorable",
        "backupkit restore latest --target /srv/drill    # rebuild it elsewhere",
        "backupkit schedule --systemd --install          # nightly, with an alert",
    ],
    "backup": [
        "backupkit backup",
        "backupkit --state-dir /srv/openclaw backup --output /srv/backups --reason pre-upgrade",
        "backupkit backup --dry-run                      # what would be captured",
        "backupkit backup -q --prune daily=7,weekly=4    # for a timer",
    ],
    "verify": [
        "backupkit verify latest",
        "backupkit verify 20261123T030512Z               # a backup id (or a unique prefix)",
        "backupkit verify /srv/backups/openclaw-backup-20261123T030512Z-1a2b3c4d.tar.zst --json",
    ],
    "restore": [
        "backupkit restore latest --target /srv/restored --dry-run",
        "backupkit restore latest --target /srv/restored",
        "backupkit restore 20261123T030512Z --in-place   # after a safety snapshot",
        "backupkit restore latest --in-place --agent main",
    ],
    "show": [
        "backupkit show latest",
        "backupkit show 20261123T030512Z --json",
    ],
    "list": [
        "backupkit list",
        "backupkit list --output /srv/backups --json",
    ],
    "prune": [
        "backupkit prune --keep-daily 7 --keep-weekly 4 --dry-run",
        "backupkit prune --keep-last 10",
    ],
    "status": [
        "backupkit status --max-age 26h                  # exit 1 when stale or failed",
        "backupkit status --prometheus /var/lib/node_exporter/backupkit.prom",
    ],
    "schedule": [
        "backupkit schedule --systemd --install --dry-run",
        "backupkit schedule --systemd --install --prune daily=7,weekly=4",
        "backupkit schedule --cron --at 03:17 --install",
        "backupkit schedule --systemd --uninstall",
    ],
    "push": [
        "backupkit push latest --to s3://my-bucket/gateway-1",
        "backupkit push 20261123T030512Z --to s3://my-bucket/gateway-1 --retention-days 30",
    ],
    "key": [
        "backupkit key new ~/backup.key",
    ],
    "key new": [
        "backupkit key new ~/backup.key                  # prints the recipient (age1...)",
        "backupkit backup --encrypt-to age1...           # then back up to it",
    ],
}


def epilog(command: str) -> str:
    """The `Examples:` block for `command` ("backup", "key new"), laid out as written: click
    keeps a paragraph that starts with \\b unwrapped."""
    lines = "\n".join(f"  {line}" for line in _EXAMPLES[command])
    return f"\b\nExamples:\n{lines}"
