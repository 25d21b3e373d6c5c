"""What is timed on each tree, and the inputs prepared for it before the rounds.

Backups, against the naive pipeline and the compression floor: `naive` (sqlite3 `VACUUM INTO`
each database, then tar | zstd), `floor` (the same tar | zstd over snapshots prepared once, so
compression alone), and backupkit with verify off, on (the default) and `--compression fast`;
with `--encrypted`, also backupkit with verify on and `--encrypt-to` (age), in the same rounds.
Verifies, against a naive extract plus integrity check: backupkit verify and, when the command
exists, backupkit restore `--target`. Both verifiers and the restore read one archive that
backupkit writes before the rounds (stock tools read it too).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .procs import backupkit_cmd, child_env
from .rounds import Contender
from .settings import ROOT
from .shell import bash, capture_script, naive_verify_script, pack_script
from .trees import Tree


def floor_snapshots(scratch: Path) -> Path:
    return scratch / "floor-snap"


def _recipient(scratch: Path) -> str:
    """A fresh age identity in scratch (backupkit key new); its recipient."""
    made = subprocess.run(
        backupkit_cmd("-q", "key", "new", str(scratch / "age-identity.txt")),
        capture_output=True,
        text=True,
        check=False,
        env=child_env(),
        cwd=ROOT,
    )
    if made.returncode != 0:
        raise SystemExit(f"bench: making an age identity failed: {made.stderr.strip()}")
    return made.stdout.strip()


def naive_backup(tree: Tree, scratch: Path) -> Contender:
    """The naive pipeline: the baseline every backup is compared with."""
    snap, out = scratch / "naive-snap", scratch / "naive.tar.zst"
    return Contender(
        "naive",
        "naive backup (sqlite3 VACUUM INTO each, tar | zstd)",
        "backup",
        bash(
            scratch / "naive-backup.sh",
            capture_script(tree, snap) + pack_script(tree, snap, out),
        ),
        [out, snap],
    )


def backup_contenders(tree: Tree, scratch: Path, encrypted: bool = False) -> list[Contender]:
    state = str(tree.state_dir)
    bk_out = scratch / "bk-out"
    # Full backups: the archive prepared for the verifiers is in the ledger, and a nightly
    # would copy from it (the nightly rounds time that, in nightly.py).
    bk_args = ["--state-dir", state, "-q", "backup", "--output", str(bk_out), "--full"]
    contenders = [
        naive_backup(tree, scratch),
        Contender(
            "floor",
            "compression floor (tar | zstd over snapshots)",
            "backup",
            bash(
                scratch / "floor.sh",
                pack_script(tree, floor_snapshots(scratch), scratch / "floor.tar.zst"),
            ),
            [scratch / "floor.tar.zst"],
        ),
        Contender(
            "backupkit",
            "backupkit backup --no-verify",
            "backup",
            backupkit_cmd(*bk_args, "--no-verify"),
            [bk_out],
            backupkit=True,
        ),
        Contender(
            "backupkit+verify",
            "backupkit backup (verify on, the default)",
            "backup",
            backupkit_cmd(*bk_args),
            [bk_out],
            backupkit=True,
        ),
        Contender(
            "backupkit-fast",
            "backupkit backup --compression fast --no-verify",
            "backup",
            backupkit_cmd(*bk_args, "--compression", "fast", "--no-verify"),
            [bk_out],
            backupkit=True,
        ),
    ]
    if encrypted:
        contenders.append(
            Contender(
                "backupkit+age",
                "backupkit backup --encrypt-to (age; verify on)",
                "backup",
                backupkit_cmd(*bk_args, "--encrypt-to", _recipient(scratch)),
                [bk_out],
                backupkit=True,
            )
        )
    return contenders


def prepare_inputs(tree: Tree, scratch: Path) -> tuple[Path, list[Path]]:
    """Snapshots for the floor and one archive for the verifiers, written before the rounds.

    Returns the archive and the directories to read into the page cache before round 1."""
    print("  preparing: snapshots for the floor, one archive for the verifiers", flush=True)
    floor_snap = floor_snapshots(scratch)
    prep = subprocess.run(
        bash(scratch / "floor-prep.sh", capture_script(tree, floor_snap)),
        capture_output=True,
        check=False,
        env=child_env(),
    )
    if prep.returncode != 0:
        raise SystemExit(f"bench: preparing snapshots failed: {prep.stderr.decode().strip()}")
    verify_in = scratch / "verify-input"
    prep = subprocess.run(
        backupkit_cmd(
            "--state-dir",
            str(tree.state_dir),
            "-q",
            "backup",
            "--output",
            str(verify_in),
            "--no-verify",
        ),
        capture_output=True,
        check=False,
        env=child_env(),
        cwd=ROOT,
    )
    archives = sorted(verify_in.glob("*.tar.zst"))
    if prep.returncode != 0 or len(archives) != 1:
        raise SystemExit(f"bench: preparing the verify archive failed: {prep.stderr.decode()}")
    return archives[0], [verify_in, floor_snap]


def verify_contenders(
    tree: Tree, scratch: Path, archive: Path, with_restore: bool
) -> list[Contender]:
    state = str(tree.state_dir)
    contenders = [
        Contender(
            "naive-verify",
            "naive verify (zstd -dc | tar -x, sqlite3 integrity_check)",
            "verify",
            bash(
                scratch / "naive-verify.sh",
                naive_verify_script(tree, archive, scratch / "naive-extract"),
            ),
            [scratch / "naive-extract"],
        ),
        Contender(
            "backupkit-verify",
            "backupkit verify --no-record",
            "verify",
            backupkit_cmd("--state-dir", state, "-q", "verify", str(archive), "--no-record"),
            [],
            backupkit=True,
        ),
    ]
    if with_restore:
        target = scratch / "restore-target"
        contenders.append(
            Contender(
                "backupkit-restore",
                "backupkit restore --target (vs naive verify)",
                "verify",
                backupkit_cmd(
                    "--state-dir", state, "-q", "restore", str(archive), "--target", str(target)
                ),
                [target],
                backupkit=True,
            )
        )
    return contenders


def per_database_contenders(many: Tree, few: Tree, scratch: Path) -> list[Contender]:
    """The naive pipeline and backupkit on many small databases and on a few large ones."""
    contenders: list[Contender] = []
    for tag, tree in (("many", many), ("few", few)):
        snap, out = scratch / f"{tag}-snap", scratch / f"{tag}.tar.zst"
        contenders.append(
            Contender(
                f"naive@{tag}",
                f"naive backup, {tag}",
                "backup",
                bash(
                    scratch / f"naive-{tag}.sh",
                    capture_script(tree, snap) + pack_script(tree, snap, out),
                ),
                [out, snap],
            )
        )
        bk_out = scratch / f"bk-{tag}"
        contenders.append(
            Contender(
                f"backupkit@{tag}",
                f"backupkit backup --no-verify, {tag}",
                "backup",
                backupkit_cmd(
                    "--state-dir",
                    str(tree.state_dir),
                    "-q",
                    "backup",
                    "--output",
                    str(bk_out),
                    "--no-verify",
                    "--full",
                ),
                [bk_out],
                backupkit=True,
            )
        )
    return contenders


def restore_available() -> bool:
    probe = subprocess.run(
        backupkit_cmd("restore", "--help"),
        capture_output=True,
        check=False,
        env=child_env(),
        cwd=ROOT,
    )
    return probe.returncode == 0
