"""`scripts/bench --offsite`: upload throughput and peak RSS of `backupkit push` to a real
S3-protocol server on 127.0.0.1, against boto3's own `upload_file` (its transfer manager,
default settings) pushing the same file to the same server in the same run.

The file is a zstd frame of random bytes, named like an archive: incompressible, like an
encrypted archive, and cached across runs. Both contenders run as their own process under a
tiny wrapper that reports the child's peak RSS.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .procs import backupkit_cmd, child_env
from .rounds import RSS_RE, RSS_WRAPPER, describe_load, load_between, sample_load
from .settings import MIB, ROOT

sys.path.insert(0, os.fspath(ROOT))
from fixtures.s3server import S3Server, server_python

RSS_BOUND_MB = 150
ARCHIVE_NAME = "openclaw-backup-20260101T000000Z-00b3c0de.tar.zst"
BOTO3_UPLOAD = (
    "import sys, boto3\n"
    "from botocore.config import Config\n"
    "c = boto3.client('s3', config=Config(s3={'addressing_style': 'path'},\n"
    "    request_checksum_calculation='when_required'))\n"
    "c.upload_file(sys.argv[1], sys.argv[2], sys.argv[3])\n"
)


def _archive(directory: Path, size: int) -> Path:
    path = directory / f"{size // MIB}MiB" / ARCHIVE_NAME
    if path.is_file() and path.stat().st_size > size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        head = subprocess.Popen(["head", "-c", str(size), "/dev/urandom"], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-1", "-q", "-c"], stdin=head.stdout, stdout=out, check=True)
        head.wait()
    tmp.replace(path)
    return path


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one run of `cmd`, which must succeed."""
    with tempfile.NamedTemporaryFile("r") as rss:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", RSS_WRAPPER, rss.name, *cmd],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[:4]} failed: {proc.stderr.strip()[-400:]}")
        match = RSS_RE.search(Path(rss.name).read_text())
    return seconds, (int(match.group(1)) / 1024 if match else float("nan"))


def run(bench_dir: Path, size_mib: int, rounds: int, json_path: Path) -> int:
    python = server_python()
    if python is None:
        print("bench: no S3 test server installed (scripts/bench installs it)", file=sys.stderr)
        return 2
    work = bench_dir / "offsite"
    archive = _archive(work, size_mib * MIB)
    size = archive.stat().st_size
    server = S3Server(python, Path(tempfile.mkdtemp(prefix="server-", dir=work)))
    server.start()
    env = {**child_env(), **server.env(), "PYTHONPATH": os.fspath(ROOT)}
    state = work / "state"
    (state / "state").mkdir(parents=True, exist_ok=True)
    results: dict[str, list[tuple[float, float]]] = {"push": [], "boto3": []}
    start = sample_load()
    try:
        import boto3  # noqa: F401 - the bench runs in backupkit's venv, which has it

        client = server.client()
        for n in range(rounds):
            bucket = f"bench-{os.getpid()}-{n}"
            client.create_bucket(Bucket=bucket)
            order = ["push", "boto3"] if n % 2 == 0 else ["boto3", "push"]
            for who in order:
                if who == "push":
                    cmd = backupkit_cmd(
                        "--state-dir",
                        os.fspath(state),
                        "push",
                        os.fspath(archive),
                        "--to",
                        f"s3://{bucket}/push",
                    )
                else:
                    cmd = [
                        sys.executable,
                        "-c",
                        BOTO3_UPLOAD,
                        os.fspath(archive),
                        bucket,
                        f"boto3/{ARCHIVE_NAME}",
                    ]
                results[who].append(_timed(cmd, env))
    finally:
        server.stop()
    load = load_between(start, sample_load())
    out = _report(size, results, load)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"bench: offsite results written to {json_path}")
    return 0 if out["rss_pass"] else 1


def _report(size: int, results: dict[str, list[tuple[float, float]]], load: dict[str, Any]) -> dict:
    def med(who: str, i: int) -> float:
        return statistics.median(r[i] for r in results[who])

    push_s, push_rss = med("push", 0), max(r[1] for r in results["push"])
    boto_s, boto_rss = med("boto3", 0), max(r[1] for r in results["boto3"])
    out = {
        "archive_bytes": size,
        "rounds": len(results["push"]),
        "push_seconds": round(push_s, 2),
        "push_mib_per_s": round(size / MIB / push_s, 1),
        "push_peak_rss_mb": round(push_rss, 1),
        "boto3_upload_file_seconds": round(boto_s, 2),
        "boto3_upload_file_mib_per_s": round(size / MIB / boto_s, 1),
        "boto3_upload_file_peak_rss_mb": round(boto_rss, 1),
        "push_vs_boto3_time_ratio": round(push_s / boto_s, 2),
        "rss_bound_mb": RSS_BOUND_MB,
        "rss_pass": push_rss <= RSS_BOUND_MB,
        "load": load,
    }
    print(
        f"offsite upload of a {size / MIB:.0f} MiB archive to ministack on 127.0.0.1 "
        f"({out['rounds']} rounds, medians; {describe_load(load)})"
    )
    print(
        f"  backupkit push (proven)   {push_s:7.2f} s  {out['push_mib_per_s']:7.1f} MiB/s  "
        f"peak RSS {push_rss:6.1f} MB  {'PASS' if out['rss_pass'] else 'MISS'} (<= "
        f"{RSS_BOUND_MB} MB)"
    )
    print(
        f"  boto3 upload_file         {boto_s:7.2f} s  {out['boto3_upload_file_mib_per_s']:7.1f}"
        f" MiB/s  peak RSS {boto_rss:6.1f} MB"
    )
    print(f"  push / upload_file time   {out['push_vs_boto3_time_ratio']:.2f} x")
    return out
