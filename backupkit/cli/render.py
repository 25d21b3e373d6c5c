"""Every line of human text the command line prints, and nothing else: the library reports
typed results; this module turns them into words for people."""

from __future__ import annotations

from typing import Any

from ..archive.manifest import Manifest
from ..backup.pipeline import BackupResult
from ..offsite.catalog import RemoteEntry
from ..offsite.status import RemoteStatus
from ..offsite.upload import RemoteCopy
from ..ops.catalog import Entry
from ..ops.prune import PruneOutcome
from ..ops.schedule_install import ScheduleReport
from ..ops.status import StatusReport
from ..restore.plan import RestoreReport
from ..verify.verdict import VerifyReport
from .units import duration, plural, ratio, size


def describe_manifest(m: Manifest) -> str:
    lines = [
        f"backup {m.backup_id}",
        f"  created   {m.created_at}",
        f"  reason    {m.reason}",
        f"  state dir {m.state_dir}",
        f"  tool      backupkit {m.tool_version} (format {m.format_version})",
        *(
            [
                f"  encrypted age, {m.encryption.recipients} recipients: "
                + ", ".join(m.encryption.recipient_fingerprints)
            ]
            if m.encryption is not None
            else []
        ),
        "",
        f"databases ({len(m.databases)}):",
    ]
    for d in m.databases:
        agent = f" {d.agent_id}" if d.agent_id else ""
        version = f"schema {d.schema_version}" if d.schema_version is not None else "no schema_meta"
        lines.append(
            f"  {d.role:<6}{agent:<16} {size(d.size_bytes):>10}  {version}, "
            f"user_version {d.user_version}, integrity {d.integrity}"
        )
        lines.append(f"         {d.source_path}")
    kinds: dict[str, tuple[int, int]] = {}
    for f in m.files:
        count, total = kinds.get(f.kind, (0, 0))
        kinds[f.kind] = (count + 1, total + f.size_bytes)
    lines.append(f"files ({len(m.files)}):")
    for kind, (count, total) in sorted(kinds.items()):
        lines.append(f"  {kind:<13} {count:>6} files {size(total):>10}")
    outside = [link for link in m.links if link.outside_state_dir]
    lines.append(f"symlinks: {len(m.links)} ({len(outside)} pointing outside the state dir)")
    for link in outside:
        lines.append(f"  {link.source_path} -> {link.target}")
    reasons: dict[str, int] = {}
    for s in m.skipped:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    summary = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
    lines.append(f"skipped: {len(m.skipped)} ({summary})")
    return "\n".join(lines)


def encryption_note(m: Manifest) -> str:
    """ ", encrypted (age) to N recipients", or nothing for a plaintext archive."""
    if m.encryption is None:
        return ""
    n = m.encryption.recipients
    return f", encrypted (age) to {n} recipient{'s' if n != 1 else ''}"


def sizes_side_by_side(input_bytes: int, archive_bytes: int, what: str = "read") -> str:
    """`15.0 MiB read, 4.2 MiB archive (3.6x)`: what went in beside what came out."""
    return (
        f"{size(input_bytes)} {what}, {size(archive_bytes)} archive "
        f"({ratio(input_bytes, archive_bytes)})"
    )


def backup_summary(result: BackupResult) -> str:
    m = result.manifest
    if not result.verified:
        verified = "not verified (--no-verify)"
    elif m.encryption is not None:
        verified = "ciphertext verified (verify --identity checks the contents)"
    else:
        verified = "verified"
    return (
        f"backupkit: {plural(len(m.databases), 'database')}, {plural(len(m.files), 'file')}: "
        f"{sizes_side_by_side(result.input_bytes, result.size_bytes)}, {verified}, "
        f"in {duration(result.seconds)}{encryption_note(m)}"
    )


def describe_plan(plan: dict[str, Any]) -> str:
    lines = [
        f"dry run: would back up {plan['state_dir']} into {plan['output_dir']}",
        "",
        "databases:",
    ]
    for d in plan["databases"]:
        agent = f" agent={d['agent_id']}" if d["agent_id"] else ""
        lines.append(
            f"  {d['role']:<6}{agent} {d['source_path']} ({size(d['size_bytes'])}) "
            f"-> {d['archive_path']}  [{d['found_by']}]"
        )
    kinds: dict[str, int] = {}
    for f in plan["files"]:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    lines.append(f"files: {len(plan['files'])} ({summary})")
    for f in plan["files"]:
        lines.append(f"  {f['kind']:<12} {f['source_path']} ({size(f['size_bytes'])})")
    for link in plan["links"]:
        where = " (points outside the state dir)" if link["outside_state_dir"] else ""
        lines.append(f"  symlink      {link['source_path']} -> {link['target']}{where}")
    lines.append(f"skipped: {len(plan['skipped'])}")
    for s in plan["skipped"]:
        lines.append(f"  {s['reason']:<16} {s['source_path']}")
    for note in plan["notes"]:
        lines.append(f"note: {note}")
    if plan.get("encrypted"):
        lines.append(f"encrypted (age) to {plan['recipient_count']} recipient(s)")
    lines.append(
        f"total: {size(plan['input_bytes'])} to read before compression; nothing was written"
    )
    return "\n".join(lines)


def verify_line(report: VerifyReport) -> str:
    m = report.manifest
    n = len(report.defects)
    verdict = "OK" if report.ok else f"FAILED ({plural(n, 'defect')})"
    held = ""
    if m is not None and report.size_bytes is not None:
        held = f", {sizes_side_by_side(report.input_bytes, report.size_bytes, 'of content')}"
    return (
        f"{report.archive}: {verdict}: {plural(len(m.databases) if m else 0, 'database')}, "
        f"{plural(report.files_checked, 'member')} checked{held}, in {duration(report.seconds)}"
    )


def restore_items(report: RestoreReport) -> list[str]:
    return [
        f"{i.action:<8} {i.kind:<9} {size(i.size_bytes):>10}  {i.path}"
        + (f"  ({i.why})" if i.why else "")
        for i in report.items
    ]


def restore_line(report: RestoreReport) -> str:
    c = report.counts()
    verb = "would" if report.dry_run else "did"
    skipped = f", skip {c['skip']}" if c["skip"] else ""
    written = sum(i.size_bytes for i in report.items if i.action in ("create", "replace"))
    return (
        f"restore {report.mode} {verb}: create {c['create']}, replace {c['replace']}, "
        f"keep {c['keep']}, remove {c['remove']}{skipped} in {report.state_dir} "
        f"({size(written)} {'to write' if report.dry_run else 'written'})"
    )


def prune_lines(report: PruneOutcome) -> list[str]:
    out = []
    for item in report.items:
        verb = "keep" if item.keep else ("would remove" if report.dry_run else "removed")
        out.append(f"{verb:<12} {item.backup_id}  {item.reason or '?':<14} {', '.join(item.why)}")
    return out


def prune_summary(report: PruneOutcome) -> str:
    kept = len(report.items) - len(report.removed)
    verb = "would remove" if report.dry_run else "removed"
    return f"backupkit: policy {report.policy}: keep {kept}, {verb} {len(report.removed)}"


_LIST_HEADER = ("BACKUP ID", "CREATED (UTC)", "SIZE", "REASON", "STATUS", "LAST CHECK", "NOTES")


def list_table(
    entries: list[Entry],
    copies: dict[str, RemoteEntry] | None = None,
    remote_only: list[RemoteEntry] | None = None,
) -> list[str]:
    """`list` as a table: a header, then one row per archive, columns as wide as their cells.
    With `copies` (list --remote), a REMOTE column says each archive's remote copy, and the
    copies with no local archive (`remote_only`) follow as rows of their own."""
    rows = [_LIST_HEADER, *(_list_row(e) for e in entries)]
    if copies is not None:
        rows = [(*rows[0][:-1], "REMOTE", rows[0][-1])] + [
            (*row[:-1], remote_tag(copies.get(e.backup_id)), row[-1])
            for row, e in zip(rows[1:], entries, strict=True)
        ]
        rows += [_remote_only_row(r) for r in remote_only or []]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2}  # sizes line up on their units
    return [
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def _list_row(e: Entry) -> tuple[str, ...]:
    check = "never"
    if e.last_check is not None:
        word = "verify" if e.last_check.kind == "verify" else "read-back"
        check = f"{word} {'ok' if e.last_check.ok else 'FAILED'} " + e.last_check.at.strftime(
            "%Y-%m-%d %H:%M"
        )
    flags = []
    if not e.on_disk:
        flags.append("MISSING: in the ledger, not on disk")
    if not e.in_ledger:
        flags.append("not in the ledger")
    if str(e.owner) == "foreign":
        flags.append("another state dir's archive")
    if e.encrypted:
        flags.append("encrypted")
    return (
        e.backup_id,
        e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        size(e.size_bytes) if e.size_bytes is not None else "-",
        e.reason or "?",
        e.status or "-",
        check,
        "; ".join(flags),
    )


def status_line(report: StatusReport) -> str:
    good = report.last_good
    if good is None:
        return "FAIL: " + "; ".join(report.problems)
    check = "never verified"
    if good.last_check is not None:
        check = f"{good.last_check.kind} {'ok' if good.last_check.ok else 'FAILED'}"
    head = (
        f"last good backup {good.backup_id}, {duration(report.age_s)} old, {check}, "
        f"{plural(report.archives, 'archive')} on disk ({size(report.archive_bytes)})"
    )
    verdict = "OK" if report.ok else "FAIL: " + "; ".join(report.problems)
    return f"{verdict}: {head}"


# The progress display (cli/live.py): one line per phase, as wide as the terminal allows.
_BAR_MAX = 30
_BAR_MIN = 8
_DETAIL_MIN = 20


def progress_line(
    stage: str,
    done: int,
    total: int | None,
    unit: str,
    *,
    speed: float | None,
    remaining: float | None,
    detail: str,
    width: int,
) -> str:
    """`capture   ━━━━━━───── 42% 6.3/15.0 MiB 3.1 MiB/s ETA 3.2s  …/agent.sqlite`, fitted to
    `width` columns: the detail (cut at its start, keeping the file name) comes before the bar,
    which only a wide terminal shows."""
    if unit == "bytes":
        amount = _bytes_of(done, total)
        speed_text = f"{size(speed)}/s" if speed else ""
    else:
        amount = f"{done}/{total}" if total else str(done)
        speed_text = ""
    pct = f"{100 * done / total:.0f}%" if total else ""
    running = total is not None and done < total
    eta = f"ETA {duration(remaining)}" if remaining is not None and running else ""
    numbers = " ".join(p for p in (pct, amount, speed_text, eta) if p)
    head = f"{stage:<10}"
    free = width - 1 - len(head) - len(numbers)  # a terminal's last column wraps
    wanted = min(len(detail), _DETAIL_MIN) + 2 if detail else 0
    bar_width = min(_BAR_MAX, free - wanted - 1)
    bar = ""
    if bar_width >= _BAR_MIN:
        filled = round(bar_width * done / total) if total else 0
        bar = "━" * filled + "─" * (bar_width - filled) + " "
    line = f"{head}{bar}{numbers}"
    room = width - 1 - len(line) - 2
    if detail and room >= 4:
        shown = detail if len(detail) <= room else "…" + detail[-(room - 1) :]
        line = f"{line}  {shown}"
    return line[: max(0, width - 1)]


def _bytes_of(done: int, total: int | None) -> str:
    """`6.3/15.0 MiB`, or `512 KiB/15.0 MiB` across units."""
    if not total:
        return size(done)
    a, b = size(done), size(total)
    if a.split()[-1] == b.split()[-1]:
        return f"{a.split()[0]}/{b}"
    return f"{a}/{b}"


def schedule_report(report: ScheduleReport) -> str:
    """What `schedule --install/--uninstall` did (or, dry, would do), then what to run next."""
    would = report.dry_run
    lines: list[str] = []
    for path, text in report.files:
        if would:
            lines.append(f"would write {path}:")
            lines += [f"  {line}" for line in text.rstrip("\n").splitlines()]
        else:
            lines.append(f"wrote {path}")
    for path in report.removed:
        lines.append(f"{'would remove' if would else 'removed'} {path}")
    if report.kind == "cron":
        verb = "would be" if would else "is now"
        lines.append(f"your crontab {verb}:")
        lines += [f"  {line}" for line in (report.crontab or "").rstrip("\n").splitlines()]
    if report.kind == "systemd" and not report.files and not report.removed:
        lines.append("nothing of backupkit's to remove")
    if report.next_steps:
        lines.append("then run: " + " && ".join(report.next_steps))
    return "\n".join(lines)


# --- remote copies (offsite/) ------------------------------------------------------------


def remote_copy_line(copy: RemoteCopy) -> str:
    how = "checksums kept by the server" if copy.proof == "sha256-parts" else "read back whole"
    lock = f", locked until {copy.locked_until:%Y-%m-%d %H:%M}Z" if copy.locked_until else ""
    there = " (already there)" if copy.already_there else ""
    return (
        f"backupkit: remote copy {copy.url}{there}: {size(copy.size_bytes)}, proven ({how}){lock}"
    )


def remote_tag(e: RemoteEntry | None) -> str:
    """What `list` says about a backup's remote copy."""
    if e is None:
        return "-"
    state = "proven" if e.proven else (e.state or "not proven").removeprefix("remote-")
    return f"{state} {size(e.size_bytes)}"


def _remote_only_row(e: RemoteEntry) -> tuple[str, ...]:
    return (
        e.backup_id,
        e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "-",
        e.reason or "?",
        "-",
        "-",
        remote_tag(e),
        "remote only" + ("" if str(e.owner) == "this" else "; not this state dir's"),
    )


def remote_status_line(report: RemoteStatus) -> str:
    good = report.newest
    verdict = "OK" if report.ok else "FAIL: " + "; ".join(report.problems)
    if good is None:
        return f"{verdict}: remote {report.remote}"
    return (
        f"{verdict}: newest proven remote copy {good.backup_id}, {duration(report.age_s)} old, "
        f"{report.copies} copies ({size(report.bytes)}) in {report.remote}"
    )
