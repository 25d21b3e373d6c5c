"""Shared test helpers: real state trees, the real CLI (in this interpreter, or as a process when
only a process will do), row-level comparison."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard

from backupkit import jsonio
from backupkit.cli import main as cli_main
from fixtures import StateTree, build_state, wal_writer
from fixtures import state as fixture_state
from fixtures.s3server import S3Server, server_python

REPO = Path(__file__).resolve().parent.parent


# Where the session's temp trees go when the caller did not choose (no TMPDIR, no --basetemp): a
# tmpfs, when there is one with room, so that the many small trees, fsyncs and unlinks cost
# memory bandwidth instead of disk round trips. `TMPDIR=/tmp pytest` keeps them on disk.
MEMORY_TMP = Path("/dev/shm")
MEMORY_TMP_MIN_FREE = 4 << 30


def _is_roomy_tmpfs(path: Path) -> bool:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
        usage = shutil.disk_usage(path)
    except OSError:
        return False
    on_tmpfs = any(
        fields[1] == os.fspath(path) and fields[2] == "tmpfs"
        for fields in (line.split() for line in mounts)
        if len(fields) > 2
    )
    return on_tmpfs and usage.free >= MEMORY_TMP_MIN_FREE and os.access(path, os.W_OK | os.X_OK)


def _own_dir(path: Path) -> Path | None:
    """`path` as a directory of this user's, mode 0755 whatever the umask (`nobody` must be able
    to pass through it), or None if something else stands there, such as another user's
    directory or a symlink planted in the world-writable tmpfs."""
    with contextlib.suppress(FileExistsError):
        path.mkdir()
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return None
    os.chmod(path, 0o755)
    return path


def pytest_configure(config: pytest.Config) -> None:
    if config.option.basetemp is not None or "TMPDIR" in os.environ:
        return
    if not _is_roomy_tmpfs(MEMORY_TMP):
        return
    # A directory of the suite's own rather than the shared tmpfs itself, whose pytest-of-<user>
    # other tools on the machine may clean up under a running session.
    tmp = _own_dir(MEMORY_TMP / f"backupkit-tests-{os.geteuid()}")
    if tmp is not None:
        # Before pytest picks its temp root: tmp_path, tempfile, the CLI and every child process
        # all follow TMPDIR.
        os.environ["TMPDIR"] = os.fspath(tmp)
        tempfile.tempdir = None


# AWS_: no test may reach a real bucket through the settings of the machine it runs on.
LEAKY_PREFIXES = ("OPENCLAW_", "BACKUPKIT_", "AWS_")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a user's shell would give the CLI: none of our variables leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKY_PREFIXES)}
    env["PYTHONPATH"] = os.fspath(REPO)
    env.update(extra or {})
    return env


def run_cli_process(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    timeout: float = 120,
    **kwargs: object,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m backupkit ARGS` as a user would, in a clean environment, in a new
    interpreter: for what only a real process shows (signals, rlimits, a second locker, the
    interpreter's own start and exit)."""
    return subprocess.run(
        [sys.executable, "-m", "backupkit", *map(os.fspath, args)],
        capture_output=True,
        text=True,
        env=cli_env(env),
        timeout=timeout,
        **kwargs,  # type: ignore[arg-type]
    )


def _universal_newlines(data: bytes, errors: str) -> str:
    # What `subprocess.run(..., text=True)` makes of a pipe's bytes.
    return data.decode("utf-8", errors).replace("\r\n", "\n").replace("\r", "\n")


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    saved_tempdir = tempfile.tempdir
    new_tz = env.get("TZ") != saved.get("TZ")
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # gettempdir() caches: let it read this TMPDIR, as a new process does
    if new_tz:
        time.tzset()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        tempfile.tempdir = saved_tempdir
        if new_tz:
            time.tzset()


@contextlib.contextmanager
def _root_logging() -> Iterator[None]:
    # The CLI configures logging with basicConfig, which does nothing once the root logger has a
    # handler (pytest's, or an earlier call's bound to that call's stderr): give each call a
    # bare root logger, as a fresh process has, and put pytest's back afterwards.
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers = saved_handlers
        root.setLevel(saved_level)


def run_cli(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`backupkit ARGS` in this interpreter, through `backupkit.cli.main`, seen as a user would
    see it: the same clean environment as `run_cli_process`, stdin at end of file, stdout and
    stderr captured (neither a TTY, so no progress is drawn), and the process left as it was
    found (environment, temp dir, working directory, SIGTERM handler, logging)."""
    argv = [os.fspath(a) for a in args]
    out, err = io.BytesIO(), io.BytesIO()
    stdin = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace", write_through=True)
    streams = (sys.stdin, sys.stdout, sys.stderr)
    sigterm = signal.getsignal(signal.SIGTERM)
    old_cwd = os.getcwd()
    try:
        with _environment(cli_env(env)), _root_logging():
            sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
            if cwd is not None:
                os.chdir(cwd)
            try:
                code = cli_main(argv)
            except SystemExit as exc:  # what the interpreter would make of it
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except BaseException as exc:
                exc.add_note(f"backupkit {argv} crashed; its stderr:\n{err.getvalue()!r}")
                raise
            finally:
                stdout.flush()
                stderr.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = streams
        os.chdir(old_cwd)
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
    return subprocess.CompletedProcess(
        ["backupkit", *argv],
        code,
        _universal_newlines(out.getvalue(), "strict"),
        _universal_newlines(err.getvalue(), "backslashreplace"),
    )


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run an in-process CLI call under this umask, as a shell's `umask MASK` would."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _default_sigint() -> None:
    # A suite started in the background (`scripts/test &`, nohup, some CI runners) inherits
    # SIGINT ignored, and Python then keeps ignoring it: give the child the default back, as a
    # terminal would, so an interrupt test interrupts.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start `python -m backupkit ARGS` in the background (to interrupt, kill or race it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "backupkit", *map(os.fspath, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(env),
        preexec_fn=_default_sigint,
    )


# Signals that would raise an exception in Python code, and with it let a forked child run on
# into the rest of the test session (whose end would delete the session's temp dir).
_RAISING_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def fork_child(body: Callable[[], int]) -> int:
    """Fork this process; the child runs `body` and leaves with os._exit(its result), never
    returning into pytest, and the parent gets the child's pid.

    SIGINT and SIGTERM are blocked from before the fork, so the child starts with them blocked
    and no signal can raise in it outside what `body` unblocks itself (with the dispositions a
    new process has), whatever a stray kill aimed at "pytest" processes sends it. Forking is
    safe only while this process runs no other thread: a lock another thread holds would stay
    held in the child forever."""
    assert threading.active_count() == 1, threading.enumerate()
    sys.stdout.flush()
    sys.stderr.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _RAISING_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = body()
            finally:
                os._exit(code)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return pid


def _forked_main(argv: list[str], env: dict[str, str]) -> int:
    # In the child: what a new `python -m backupkit` has once its imports are done. Output goes
    # nowhere (the trials judge by the files), stdin is at end of file.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    sys.stdin = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None
    time.tzset()
    logging.getLogger().handlers = []
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _RAISING_SIGNALS)
        return cli_main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, _RAISING_SIGNALS)


class ForkedCli:
    """`backupkit ARGS` in a child forked from this process, with the environment `run_cli`
    gives: a real process to SIGKILL at any moment, which unlike `python -m backupkit` spends no
    time starting an interpreter and importing, so the moments it can be killed at are all
    inside backupkit's own work. The subset of Popen that kill trials use: pid, poll(), wait(),
    send_signal(), returncode.

    No connection of this process may be open on the databases the child uses (the trials fork
    between in-process runs, which leave none), and see `fork_child`."""

    def __init__(self, *args: str | os.PathLike[str], env: dict[str, str] | None = None) -> None:
        argv = [os.fspath(a) for a in args]
        full_env = cli_env(env)
        self.pid = fork_child(lambda: _forked_main(argv, full_env))
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _pid, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:  # not reaped yet, so the pid is still the child's
            os.kill(self.pid, sig)


def seeded_spread(rng: random.Random, count: int, span: float) -> list[float]:
    """`count` seeded kill delays covering [0, span): one at a random point of each of `count`
    equal slices, so that every part of the span is hit however the seed falls."""
    return [span * (i + rng.random()) / count for i in range(count)]


def _commit_wal_rows_in_a_fork(jobs: list[dict[str, Any]]) -> None:
    # fixtures.wal_writer's job, done by a child forked from this process: it commits every job
    # and dies through os._exit, so no close or finaliser checkpoints the rows out of the -wal.
    read_end, write_end = os.pipe()

    def commit() -> int:
        os.close(read_end)
        try:
            said, code = str(len(wal_writer.commit_and_hold(jobs))), 0
        except BaseException as exc:
            said, code = repr(exc), 1
        os.write(write_end, said.encode())
        return code

    pid = fork_child(commit)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as src:
        said = src.read().decode(errors="replace")
    _pid, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or said != str(len(jobs)):
        raise RuntimeError(f"WAL writer failed: {said or 'no answer'}")


def _write_wal_only_in_forks(jobs: list[dict[str, Any]]) -> None:
    """`fixtures.state._write_wal_only` without an interpreter start per state tree (some 30 ms,
    and a run builds about a hundred trees): the same jobs in the same chunks, each committed
    by a child forked from this process instead of a new `python -I wal_writer.py`. With
    another thread running, forking is not safe, and the fixture's own writer does it."""
    if threading.active_count() > 1:  # see fork_child
        _SUBPROCESS_WAL_WRITER(jobs)
        return
    per_child = fixture_state._fds_per_child()
    for start in range(0, len(jobs), per_child):
        _commit_wal_rows_in_a_fork(jobs[start : start + per_child])


_SUBPROCESS_WAL_WRITER = fixture_state._write_wal_only


@pytest.fixture(autouse=True, scope="session")
def _wal_rows_from_forks() -> Iterator[None]:
    # Patched here rather than in fixtures/state.py: scripts/bench keys its cached multi-GB
    # trees by that file's hash, and the trees it builds would not differ.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fixture_state, "_write_wal_only", _write_wal_only_in_forks)
        yield


NOBODY = 65534


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    ids = (f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    return subprocess.run(
        ["setpriv", *ids, sys.executable, *argv],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": os.fspath(REPO), "HOME": "/"},
        timeout=120,
    )


@functools.cache
def can_run_as_nobody() -> bool:
    """Root with setpriv, and a checkout and venv that `nobody` can read: a clone under a 0700
    directory (`mktemp -d`) is not, and backupkit cannot even be imported there."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    return _as_nobody("-c", "import backupkit.cli").returncode == 0


def run_cli_as_nobody(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """`python -m backupkit ARGS` as the unprivileged user `nobody` (the caller is root)."""
    return _as_nobody("-m", "backupkit", *map(os.fspath, args))


def can_mount_tmpfs() -> bool:
    """Whether tests may mount a small tmpfs (root, with mount(8)) for disk-full cases."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = tempfile.mkdtemp()
    ok = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], capture_output=True
        ).returncode
        == 0
    )
    if ok:
        subprocess.run(["umount", probe], check=True)
    os.rmdir(probe)
    return ok


def json_out(proc: subprocess.CompletedProcess[str]) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one JSON line on stdout, got: {proc.stdout!r}"
    return jsonio.loads(lines[0])


ERROR_LINE = re.compile(r"^backupkit: error: \S")


@dataclass
class Verdict:
    """What `backupkit verify --json` said: exit code, the error line, the report (if any)."""

    code: int
    stderr: str
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def defects(self) -> list[str]:
        return list(self.report.get("defects", []))

    @property
    def error(self) -> str:
        """The one plain line a failing run prints on stderr (README, "Exit codes")."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {self.stderr!r}"
        assert ERROR_LINE.match(lines[0]), lines[0]
        return lines[0]


def run_verify(
    archive: Path,
    *options: str,
    state_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> Verdict:
    """`backupkit [--state-dir DIR] verify --json [options] ARCHIVE` through the CLI."""
    before = ["--state-dir", os.fspath(state_dir)] if state_dir is not None else []
    proc = run_cli(*before, "verify", "--json", *options, archive, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) <= 1, f"more than one JSON object on stdout: {proc.stdout!r}"
    return Verdict(proc.returncode, proc.stderr, jsonio.loads(lines[0]) if lines else {})


def table_rows(db: Path, *, immutable: bool = False) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: the unit of "row for row" equality."""
    uri = f"file:{db}?mode=ro" + ("&immutable=1" if immutable else "")
    conn = sqlite3.connect(uri, uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
        }
    finally:
        conn.close()


def live_rows(db: Path) -> dict[str, list[tuple]]:
    """Rows of a live WAL database, read from a private copy so the live files stay untouched."""

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "db.sqlite"
        shutil.copyfile(db, copy)
        wal = Path(f"{db}-wal")
        if wal.exists():
            shutil.copyfile(wal, Path(f"{copy}-wal"))
        return table_rows(copy)


def extract_with_tar(archive: Path, dest: Path) -> None:
    """Extract with the stock GNU tar, as the disaster-recovery runbook does."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--zstd", "-xf", os.fspath(archive), "-C", os.fspath(dest)], check=True)


def archive_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with (
        open(archive, "rb") as fh,
        zstandard.ZstdDecompressor().stream_reader(fh) as z,
        tarfile.open(fileobj=z, mode="r|") as tar,
    ):
        return {m.name: m for m in tar}


def manifest_of(archive: Path) -> dict:
    with (
        open(archive, "rb") as fh,
        zstandard.ZstdDecompressor().stream_reader(fh) as z,
        tarfile.open(fileobj=z, mode="r|") as tar,
    ):
        for m in tar:
            if m.name == "manifest.json":
                return jsonio.loads(tar.extractfile(m).read())  # type: ignore[union-attr]
    raise AssertionError("no manifest.json")


def tree_snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, size, mode and mtime: equal before and after means
    nothing was created, removed or modified."""
    out: dict[str, tuple] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[os.fspath(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def only_archives(output: Path) -> list[str]:
    return sorted(os.listdir(output)) if output.exists() else []


@pytest.fixture
def state(tmp_path: Path) -> StateTree:
    return build_state(tmp_path / "openclaw")


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


def backup_ok(state: StateTree, out_dir: Path, *extra: str) -> Path:
    proc = run_cli("--state-dir", state.root, "backup", "--output", out_dir, *extra)
    assert proc.returncode == 0, proc.stderr
    archive = Path(proc.stdout.strip().splitlines()[-1])
    assert archive.is_file()
    return archive


@dataclass(frozen=True)
class Archived:
    """A state tree and one default backup of it, with what the tests compare against, taken
    before the backup ran: every database's rows, and the fingerprints of the state dir (its
    paths normalised to <state> and <ext>) and of the external agent's directory."""

    state: StateTree
    archive: Path
    rows_before: dict[Path, dict[str, list[tuple]]]
    fingerprint_before: dict[str, tuple]
    external_fingerprint_before: dict[str, tuple]


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archived]:
    """Built once per module, for the tests that only read the state and the archive (restores
    go to each test's own target, extractions to its own tmp_path). A test that changed either
    would make the others depend on it: the teardown fails if anything did."""
    root = tmp_path_factory.mktemp("archived")
    state = build_state(root / "openclaw")
    ext_dir = state.agent_dbs["external-agent"].parent
    replace = {os.fspath(state.external_dir): "<ext>", os.fspath(state.root): "<state>"}
    rows = {db: live_rows(db) for db in all_databases(state)}
    before = fingerprint(state.root, replace=replace)
    ext_before = fingerprint(ext_dir)
    archive = backup_ok(state, root / "backups")

    def unchanged() -> tuple:
        return tree_snapshot(state.root), tree_snapshot(state.external_dir), archive.read_bytes()

    after_backup = unchanged()
    yield Archived(state, archive, rows, before, ext_before)
    assert unchanged() == after_backup, "a test changed the shared state dir or archive"


def damage_state(state: StateTree) -> None:
    """What an operator finds at 3 a.m.: rows gone, config broken, a legacy file lost, and a
    foreign WAL planted beside a database (SQLite would replay it into a restored file)."""
    main = state.agent_dbs["main"]
    conn = sqlite3.connect(main)
    conn.execute("DELETE FROM session_entries")
    conn.execute("DELETE FROM transcript_event_identities")
    conn.commit()
    conn.close()
    state.config_path.write_text("{ broken")
    state.legacy_files[0].unlink()
    foreign = state.agent_dbs["zoe"]
    for side in ("-wal", "-shm"):
        Path(f"{foreign}{side}").unlink(missing_ok=True)
    Path(f"{foreign}-wal").write_bytes(os.urandom(8192))


def all_databases(state: StateTree) -> list[Path]:
    return [state.global_db, state.quarantine_db, state.foreign_db, *state.agent_dbs.values()]


SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".lock", ".pid", ".sock", ".journal.tmp")


def fingerprint(root: Path, *, replace: dict[str, str] | None = None) -> dict[str, tuple]:
    """Everything a restore must bring back, keyed by path relative to `root`: each database's
    rows (without the ledger, which records the runs themselves), each file's bytes and mode, each
    symlink's text. Path prefixes in `replace` are normalised in `agent_databases` only (the one
    table a restore rewrites)."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = os.fspath(p.relative_to(root))
            if name.endswith(SKIPPED_SUFFIXES) or name.startswith(".bk-restore-"):
                continue
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777)
            elif name.endswith(".sqlite"):
                rows = live_rows(p)
                rows.pop("backup_runs", None)
                if "agent_databases" in rows:
                    text = repr(rows["agent_databases"])
                    for old, new in (replace or {}).items():
                        text = text.replace(old, new)
                    rows["agent_databases"] = text  # type: ignore[assignment]
                out[rel] = ("db", repr(sorted(rows.items())))
            elif p.is_file():
                out[rel] = ("file", p.read_bytes(), st.st_mode & 0o7777)
    return out


def peak_rss_mb(*args: str | os.PathLike[str]) -> tuple[int, float]:
    """Run `python -m backupkit ARGS` in a process of its own and return (exit code, that
    program's peak RSS in MB). The peak is the kernel's high-water mark of the new program
    (VmHWM in /proc/PID/status, sampled until it exits): rusage would also count the copy of
    this large test process that the fork made before exec."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "backupkit", *map(os.fspath, args)],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    peak_kb = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    assert peak_kb > 0, "the process ended before its memory could be read"
    return proc.returncode, peak_kb / 1024


# --- a real S3-protocol server on 127.0.0.1 (fixtures/s3server.py) --------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    python = server_python()
    if python is None:
        pytest.fail("no S3 test server installed: run scripts/test, which installs it")
    server = S3Server(python, tmp_path_factory.mktemp("s3-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Bucket:
    name: str
    env: dict[str, str]
    client: Any

    def url(self, prefix: str = "backups") -> str:
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def object_keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, url_or_key: str) -> bytes:
        """An object's bytes, named by its key or its s3:// URL."""
        key = url_or_key.removeprefix(f"s3://{self.name}/")
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def unfinished_uploads(self) -> list[str]:
        reply = self.client.list_multipart_uploads(Bucket=self.name)
        return sorted(u["Key"] for u in reply.get("Uploads", []))


_bucket_count = iter(range(1, 1_000_000))


def make_bucket(
    server: S3Server, *, object_lock: bool = False, endpoint: str | None = None
) -> Bucket:
    env = server.env(endpoint)
    client = server.client()
    name = f"bk-test-{os.getpid()}-{next(_bucket_count)}"
    if object_lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=name)
    return Bucket(name, env, client)


@pytest.fixture
def bucket(s3_server: S3Server) -> Bucket:
    return make_bucket(s3_server)


def backup_to_args(
    state: StateTree, out: Path, bucket: Bucket, *extra: str | os.PathLike[str]
) -> tuple:
    """`backup` of `state` into `out`, uploaded to `bucket` (its default prefix)."""
    return ("--state-dir", state.root, "backup", "--output", out, "--to", bucket.url(), *extra)


def remote_args(
    state: StateTree, out: Path, bucket: Bucket, command: str, *extra: str | os.PathLike[str]
) -> tuple:
    """`list`, `status` or `prune` of `state` (archives in `out`) covering `bucket`'s copies."""
    return ("--state-dir", state.root, command, "--output", out, "--remote", bucket.url(), *extra)


def backup_to(state: StateTree, out: Path, bucket: Bucket, *extra: str) -> dict:
    """Run `backup --to` and return its JSON, insisting that it succeeded."""
    proc = run_cli(*backup_to_args(state, out, bucket, "--json", *extra), env=bucket.env)
    assert proc.returncode == 0, proc.stderr
    return json_out(proc)


def json_text(text: str) -> dict:
    """One JSON object from text (a ledger column, a process's stdout)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    value = jsonio.loads(lines[0])
    assert isinstance(value, dict)
    return value
