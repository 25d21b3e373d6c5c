"""Every line of human text the command line prints, and nothing else: the library reports
typed results; this module turns them into words for people."""

from __future__ import annotations

from typing import Any

from ..archive.manifest import Manifest
from ..offsite.catalog import RemoteEntry
from ..offsite.prune import RemotePruneReport
from ..offsite.status import RemoteStatus
from ..offsite.upload import RemoteCopy
from ..ops.catalog import Entry
from ..ops.prune import PruneReport
from ..ops.status import StatusReport
from ..restore.plan import RestoreReport
from ..verify.verdict import VerifyReport


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


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


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def describe_plan(plan: dict[str, Any]) -> str:
    lines = [f"dry run: would back up {plan['state_dir']} into {plan['output']}", "", "databases:"]
    for d in plan["databases"]:
        agent = f" agent={d['agent_id']}" if d["agent_id"] else ""
        lines.append(
            f"  {d['role']:<6}{agent} {d['source_path']} ({d['size_bytes']} bytes) "
            f"-> {d['archive_path']}  [{d['found_by']}]"
        )
    kinds: dict[str, int] = {}
    for f in plan["files"]:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    lines.append(f"files: {len(plan['files'])} ({summary})")
    for f in plan["files"]:
        lines.append(f"  {f['kind']:<12} {f['source_path']} ({f['size_bytes']} bytes)")
    for link in plan["links"]:
        where = " (points outside the state dir)" if link["outside_state_dir"] else ""
        lines.append(f"  symlink      {link['source_path']} -> {link['target']}{where}")
    lines.append(f"skipped: {len(plan['skipped'])}")
    for s in plan["skipped"]:
        lines.append(f"  {s['reason']:<16} {s['source_path']}")
    for note in plan["notes"]:
        lines.append(f"note: {note}")
    if plan.get("encrypted"):
        lines.append(f"encrypted (age) to {plan['recipients']} recipient(s)")
    lines.append(f"total: {plan['total_bytes']} bytes before compression; nothing was written")
    return "\n".join(lines)


def verify_line(report: VerifyReport) -> str:
    n_db = len(report.manifest.databases) if report.manifest else 0
    n = len(report.defects)
    verdict = "OK" if report.ok else f"FAILED ({n} defect{'s' if n != 1 else ''})"
    return f"{report.archive}: {verdict}: {n_db} databases, {report.files_checked} members checked"


def restore_items(report: RestoreReport) -> list[str]:
    return [
        f"{i.action:<8} {i.kind:<9} {i.size_bytes:>12}  {i.path}"
        + (f"  ({i.why})" if i.why else "")
        for i in report.items
    ]


def restore_line(report: RestoreReport) -> str:
    c = report.counts()
    verb = "would" if report.dry_run else "did"
    skipped = f", skip {c['skip']}" if c["skip"] else ""
    return (
        f"restore {report.mode} {verb}: create {c['create']}, replace {c['replace']}, "
        f"keep {c['keep']}, remove {c['remove']}{skipped} in {report.state_dir}"
    )


def prune_lines(report: PruneReport | RemotePruneReport) -> list[str]:
    out = []
    for item in report.items:
        verb = "keep" if item.keep else ("would remove" if report.dry_run else "removed")
        out.append(f"{verb:<12} {item.backup_id}  {item.reason or '?':<14} {', '.join(item.why)}")
    return out


def prune_summary(report: PruneReport | RemotePruneReport) -> str:
    kept = len(report.items) - len(report.removed)
    verb = "would remove" if report.dry_run else "removed"
    return f"backupkit: policy {report.policy}: keep {kept}, {verb} {len(report.removed)}"


def list_line(e: Entry) -> str:
    check = "never verified"
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
    sized = f"{e.size_bytes:>12}" if e.size_bytes is not None else " " * 12
    return f"{e.backup_id}  {sized}  {e.reason or '?':<14} {e.status or '?':<7} {check}" + (
        f"  [{'; '.join(flags)}]" if flags else ""
    )


def status_line(report: StatusReport) -> str:
    good = report.last_good
    if good is None:
        return "FAIL: " + "; ".join(report.problems)
    check = "never verified"
    if good.last_check is not None:
        check = f"{good.last_check.kind} {'ok' if good.last_check.ok else 'FAILED'}"
    head = f"last good backup {good.backup_id}, {duration(report.age_s)} old, {check}"
    verdict = "OK" if report.ok else "FAIL: " + "; ".join(report.problems)
    return f"{verdict}: {head}"


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
        return "remote: -"
    state = "proven" if e.proven else (e.state or "not proven").removeprefix("remote-")
    return f"remote: {state} {size(e.size_bytes)}"


def remote_only_line(e: RemoteEntry) -> str:
    owner = "" if str(e.owner) == "this" else "  [not this state dir's]"
    return f"{e.backup_id}  {'(remote only)':>12}  {e.reason or '?':<14} {remote_tag(e)}{owner}"


def remote_status_line(report: RemoteStatus) -> str:
    good = report.newest
    verdict = "OK" if report.ok else "FAIL: " + "; ".join(report.problems)
    if good is None:
        return f"{verdict}: remote {report.remote}"
    return (
        f"{verdict}: newest proven remote copy {good.backup_id}, {duration(report.age_s)} old, "
        f"{report.copies} copies ({size(report.bytes)}) in {report.remote}"
    )
