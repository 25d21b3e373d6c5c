"""The corruption suite: `backupkit verify` never says yes to a damaged or forged archive,
and names what is wrong.

Exit codes (README, "Exit codes"), as decided here and documented in fixtures/hostile/README.md:
- 2 ("not a backupkit archive") only when the file is missing or empty, or does not start with
  the zstd magic `28 b5 2f fd`; so a flip or a truncation within those first 4 bytes is exit 2.
- 1 for every other damage, forgery or unreadable manifest, including a newer format_version.

The hostile archives are built by fixtures/hostile.py from a real backup of a generated state:
byte-level damage (flips, truncations, appended bytes) as a disk or a network would do it, and
structural forgeries re-packed with tarfile and zstandard, so that the container is sound and
only the planted defect is left to find.
"""

from __future__ import annotations

import os
import random
import re
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

import backupkit
from backupkit.archive.format import SEAL_SIZE
from backupkit.archive.reader import READ_CHUNK
from fixtures import build_state, hostile
from tests.conftest import REPO, Verdict, run_cli, run_verify

HOSTILE_DIR = REPO / "fixtures" / "hostile"
FLIP_COUNT = 200
TAR_FLIP_COUNT = 300
SQLITE_PAGE = 4096
FLIP_SEED = 20250115
TRUNCATION_SEED = 7
ZSTD_MAGIC_LEN = 4


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real backup (through the CLI) of a small generated state: two agents, 16 KiB each."""
    root = tmp_path_factory.mktemp("corruption")
    state = build_state(root / "openclaw", agents=2, bytes_per_agent=16 * 1024)
    proc = run_cli("--state-dir", state.root, "backup", "--output", root / "backups")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1]).read_bytes()


@pytest.fixture(scope="module")
def good_manifest(good: bytes) -> dict:
    return hostile.manifest_of(hostile.read_members(good))


def write(tmp_path: Path, data: bytes, name: str = "hostile.tar.zst") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def rejected(tmp_path: Path, data: bytes) -> Verdict:
    """Verify `data` through the CLI (recording nothing)."""
    return run_verify(write(tmp_path, data), "--no-record")


def only_defect(verdict: Verdict) -> str:
    """Exit 1 with exactly one defect, also named on the stderr line; return the defect."""
    assert verdict.code == 1, (verdict.code, verdict.stderr)
    assert len(verdict.defects) == 1, verdict.defects
    [defect] = verdict.defects
    assert defect in verdict.error
    return defect


def assert_not_an_archive(verdict: Verdict) -> None:
    assert verdict.code == 2, (verdict.code, verdict.stderr)
    assert "not a backupkit archive" in verdict.error


def library_outcome(path: Path) -> tuple[int, str]:
    """(exit code, first message) from `verify_archive`, for sweeps where a subprocess per case
    would be slow. Anything but a BackupError is a bug and is reported as exit code -1."""
    try:
        report = backupkit.verify_archive(path, record=False)
    except backupkit.BackupError as err:
        return err.exit_code, str(err)
    except Exception as err:  # a crash, not a verdict: the sweep must report it
        return -1, repr(err)
    return (0, "") if report.ok else (1, report.defects[0])


# --------------------------------------------------------------------------------------------
# Byte-level damage
# --------------------------------------------------------------------------------------------


def flip_offsets(archive: bytes, manifest_span: int) -> list[int]:
    """About FLIP_COUNT seeded offsets: the first 16 bytes (magic, frame header, first block
    header), the last 16 (last block, content checksum), a quarter inside the compressed
    manifest near the end, the rest spread over the whole file."""
    size = len(archive)
    rng = random.Random(FLIP_SEED)
    edges = set(range(16)) | set(range(size - 16, size))
    manifest_region = range(max(16, size - manifest_span - 16), size - 16)
    chosen = edges | set(rng.sample(manifest_region, min(len(manifest_region), FLIP_COUNT // 4)))
    while len(chosen) < FLIP_COUNT:
        chosen.add(rng.randrange(size))
    return sorted(chosen)


def misjudged_flips(
    archive: bytes, offsets: list[int], tmp_path: Path, *, allow_null_flips: bool = False
) -> list[str]:
    """Every flip verify got wrong: exit 2 is right only inside the zstd magic, exit 1 (with a
    message) everywhere else.

    A "null flip" is one whose archive still decodes to the very same tar stream: zstd never
    reads those bits (about 1 offset in 6,000 of a real backup), so a restore would be exact and
    no content check can see it; only a hash of the compressed file itself could."""
    original = hostile.decompress(archive)
    wrong = []
    for offset in offsets:
        flipped = hostile.flip(archive, offset)
        code, message = library_outcome(write(tmp_path, flipped))
        expected = 2 if offset < ZSTD_MAGIC_LEN else 1
        if code == 0:
            if hostile.decompress(flipped) != original:
                wrong.append(f"{offset}: verified OK, content changed")
            elif not allow_null_flips:
                wrong.append(f"{offset}: verified OK, null flip (decoded stream unchanged)")
        elif code != expected or not message:
            wrong.append(f"{offset}: exit {code} {message!r}")
    return wrong


def test_no_single_byte_flip_of_a_real_backup_verifies(good: bytes, tmp_path: Path) -> None:
    """About 200 seeded offsets over a real backup. Backups are sealed, so even a null flip
    (see `misjudged_flips`) must be rejected."""
    manifest_bytes = hostile.find(hostile.read_members(good), hostile.MANIFEST_NAME).data
    offsets = flip_offsets(good, len(hostile.compress(manifest_bytes)))
    assert len(offsets) >= FLIP_COUNT
    wrong = misjudged_flips(good, offsets, tmp_path)
    assert wrong == [], f"{len(wrong)} of {len(offsets)} flips misjudged: {wrong[:10]}"


def decodes_unchanged(frame: bytes, offset: int, original: bytes) -> bool:
    """Whether `frame` with the byte at `offset` flipped still decodes to `original`: a null
    flip, invisible to every check of the content."""
    try:
        return hostile.decompress(hostile.flip(frame, offset)) == original
    except zstandard.ZstdError:
        return False


def test_flips_that_zstd_never_reads_are_caught_by_the_seal(good: bytes, tmp_path: Path) -> None:
    """Every offset of a real backup's zstd frame is flipped and decoded. The null flips (the
    decoded tar stream is unchanged, so no content check can see them) must still be rejected,
    by the sha256 seal backup appends after the frame."""
    frame = good[: len(good) - SEAL_SIZE]
    original = hostile.decompress(frame)
    null_flips = [
        offset
        for offset in range(ZSTD_MAGIC_LEN, len(frame))
        if decodes_unchanged(frame, offset, original)
    ]
    # Without a null flip to catch the seal would be proven by nothing here. A fresh backup has
    # a handful (3 to 7 in 44 KB ones), at offsets that recur from backup to backup.
    assert null_flips, f"no null flip in a {len(good)}-byte backup: the sweep proves nothing"
    for offset in null_flips:
        code, message = library_outcome(write(tmp_path, hostile.flip(good, offset)))
        assert (code, "seal" in message) == (1, True), (offset, code, message)
    print(f"null flips in a {len(good)}-byte backup: {len(null_flips)}")


def test_every_single_byte_flip_of_the_checked_in_archive_is_rejected(tmp_path: Path) -> None:
    """Every offset of a fixed archive: 100% detection, no exception."""
    good = (HOSTILE_DIR / "good.tar.zst").read_bytes()
    wrong = misjudged_flips(good, list(range(len(good))), tmp_path)
    assert wrong == [], f"{len(wrong)} of {len(good)} flips misjudged: {wrong[:10]}"


def restored_view(archive: bytes) -> list[tuple[object, ...]] | None:
    """What extracting the archive would produce: each member's name, type, mode, mtime, link
    target and bytes; None when tarfile cannot read it."""
    try:
        members = hostile.read_members(archive)
    except (tarfile.TarError, zstandard.ZstdError, UnicodeError):
        return None
    return [
        (m.name, m.info.type, m.info.mode, m.info.mtime, m.info.linkname, m.data) for m in members
    ]


def tar_flip_offsets(archive: bytes, raw_size: int) -> list[int]:
    """TAR_FLIP_COUNT seeded offsets into the tar stream: a third inside the first page of each
    database (header and schema, where SQLite's own error messages come from), the rest
    anywhere."""
    rng = random.Random(FLIP_SEED)
    first_pages = [
        offset
        for m in hostile.read_members(archive)
        if m.data.startswith(b"SQLite format 3\x00")
        for offset in range(m.info.offset_data, m.info.offset_data + SQLITE_PAGE)
    ]
    chosen = set(rng.sample(first_pages, TAR_FLIP_COUNT // 3))
    while len(chosen) < TAR_FLIP_COUNT:
        chosen.add(rng.randrange(raw_size))
    return sorted(chosen)


def test_no_single_byte_flip_of_the_tar_stream_inside_a_sound_frame_verifies(
    tmp_path: Path,
) -> None:
    """Damage done before compression (or by a forger who re-compresses): the zstd checksum
    is right, so the tar, manifest and database checks must catch it. A flip that changes
    nothing an extraction produces (the zero padding after a member's data, a header byte
    tarfile never reads) is the one allowed to verify."""
    good = (HOSTILE_DIR / "good.tar.zst").read_bytes()
    raw = hostile.decompress(good)
    expected = restored_view(good)
    wrong = []
    for offset in tar_flip_offsets(good, len(raw)):
        flipped = hostile.compress(hostile.flip(raw, offset), level=1)
        code, message = library_outcome(write(tmp_path, flipped))
        if code == 0 and restored_view(flipped) != expected:
            wrong.append(f"{offset}: verified OK, extraction would differ")
        elif code not in (0, 1) or (code == 1 and not message):
            wrong.append(f"{offset}: exit {code} {message!r}")
    assert wrong == [], f"{len(wrong)} of {TAR_FLIP_COUNT} flips misjudged: {wrong[:10]}"


def test_a_flip_in_the_zstd_magic_is_not_a_backupkit_archive(good: bytes, tmp_path: Path) -> None:
    verdict = rejected(tmp_path, hostile.flip(good, 3))
    assert_not_an_archive(verdict)
    assert "zstd" in verdict.error


def test_a_flip_right_after_the_magic_is_corruption_not_bad_input(
    good: bytes, tmp_path: Path
) -> None:
    defect = only_defect(rejected(tmp_path, hostile.flip(good, ZSTD_MAGIC_LEN)))
    assert "corrupt" in defect


def test_a_flip_in_the_content_checksum_is_caught(good: bytes, tmp_path: Path) -> None:
    # The frame's last byte is zstd's content checksum; the backup's seal follows it.
    defect = only_defect(rejected(tmp_path, hostile.flip(good, len(good) - SEAL_SIZE - 1)))
    assert "checksum" in defect


def test_a_flip_in_the_seal_is_caught(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.flip(good, len(good) - 1)))
    assert "seal" in defect


def test_a_sealed_archive_with_its_seal_cut_off_is_rejected(good: bytes, tmp_path: Path) -> None:
    # Without the seal the frame is whole and every member matches: only the manifest's
    # `sealed` flag tells that something is missing.
    defect = only_defect(rejected(tmp_path, good[: len(good) - SEAL_SIZE]))
    assert "seal is missing" in defect


def test_a_flip_inside_the_compressed_manifest_is_caught(good: bytes, tmp_path: Path) -> None:
    # 64 bytes from the end is inside the last block, the compressed manifest. Whether a flip
    # there is one zstd never reads depends on the bytes around it, which change with the length
    # of the temp paths in the manifest (1 backup in 10 under a longer TMPDIR): those are the
    # seal's to catch (test_flips_that_zstd_never_reads_are_caught_by_the_seal), so step back to
    # the nearest offset whose flip the decoder does see.
    frame = good[: len(good) - SEAL_SIZE]
    original = hostile.decompress(frame)
    offset = len(good) - 64
    while decodes_unchanged(frame, offset, original):
        offset -= 1
    defect = only_defect(rejected(tmp_path, hostile.flip(good, offset)))
    assert re.search("corrupt|truncated|trailing", defect)


def truncation_lengths(size: int) -> list[int]:
    rng = random.Random(TRUNCATION_SEED)
    fixed = {0, 1, 2, 3, 4, 5, 8, 16, 512, size // 2, size - 5, size - 4, size - 2, size - 1}
    return sorted(fixed | set(rng.sample(range(4, size), 50)))


def test_no_truncation_verifies(good: bytes, tmp_path: Path) -> None:
    wrong = []
    for length in truncation_lengths(len(good)):
        code, message = library_outcome(write(tmp_path, hostile.truncate(good, length)))
        if length < ZSTD_MAGIC_LEN:
            ok = code == 2 and "not a backupkit archive" in message
        else:
            ok = code == 1 and "truncated" in message
        if not ok:
            wrong.append((length, code, message))
    assert wrong == [], wrong[:10]


def test_dropping_the_last_byte_is_reported_as_truncation(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.truncate(good, len(good) - 1)))
    assert "truncated" in defect


def test_a_tar_stream_cut_short_inside_a_sound_zstd_frame_is_damage(
    good: bytes, tmp_path: Path
) -> None:
    defect = only_defect(rejected(tmp_path, hostile.cut_tar_short(good)))
    assert re.search("damaged|truncated|end of data", defect)


def test_data_hidden_after_the_tar_end_marker_is_rejected(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.hide_after_tar_end(good)))
    assert re.search("after|hidden|trailing", defect)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(lambda: hostile.random_bytes(100, seed=1), id="random-bytes"),
        pytest.param(lambda: b"\x00", id="one-zero-byte"),
        pytest.param(hostile.smuggling_frame, id="second-valid-zstd-frame"),
        pytest.param(lambda: hostile.skippable_frame(b"hidden"), id="skippable-frame"),
    ],
)
def test_anything_after_the_zstd_frame_is_rejected(
    good: bytes, tmp_path: Path, tail: Callable[[], bytes]
) -> None:
    defect = only_defect(rejected(tmp_path, hostile.append(good, tail())))
    assert "trailing data" in defect


@pytest.fixture(scope="module")
def two_reads(good: bytes) -> bytes:
    """A sound archive exactly two reads long, so its frame ends on a read boundary."""
    return hostile.pad_to_size(good, 2 * READ_CHUNK)


def test_a_frame_ending_exactly_on_a_read_boundary_verifies(
    two_reads: bytes, tmp_path: Path
) -> None:
    assert len(two_reads) == 2 * READ_CHUNK
    assert library_outcome(write(tmp_path, two_reads)) == (0, "")


def test_trailing_data_after_a_frame_ending_on_a_read_boundary_is_rejected(
    two_reads: bytes, tmp_path: Path
) -> None:
    defect = only_defect(rejected(tmp_path, hostile.append(two_reads, b"junk")))
    assert "trailing data" in defect


def test_an_empty_file_is_not_a_backupkit_archive(tmp_path: Path) -> None:
    verdict = rejected(tmp_path, b"")
    assert_not_an_archive(verdict)
    assert "empty" in verdict.error


def test_random_bytes_are_not_a_backupkit_archive(tmp_path: Path) -> None:
    assert_not_an_archive(rejected(tmp_path, hostile.random_bytes(64 * 1024, seed=11)))


# --------------------------------------------------------------------------------------------
# Structural forgeries: a sound container around one planted defect
# --------------------------------------------------------------------------------------------


def test_a_missing_database_member_is_named(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    name = hostile.agent_database(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.drop_member(good, name)))
    assert name in defect and "missing" in defect


def test_a_duplicated_member_is_named(good: bytes, good_manifest: dict, tmp_path: Path) -> None:
    name = hostile.first_file(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.duplicate_member(good, name)))
    assert name in defect and "more than once" in defect


def test_a_member_the_manifest_does_not_list_is_named(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.inject_unlisted(good)))
    assert "state/workspace/unlisted.txt" in defect and "not in the manifest" in defect


def test_a_manifest_that_lies_about_a_size_is_caught(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    entry = hostile.agent_database(good_manifest)
    defect = only_defect(rejected(tmp_path, hostile.lie_about_size(good)))
    assert entry["archive_path"] in defect
    assert f"size {entry['size_bytes']}" in defect and str(entry["size_bytes"] + 1) in defect


def test_a_manifest_that_lies_about_a_sha256_is_caught(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    name = hostile.first_file(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.lie_about_sha256(good)))
    assert name in defect and "sha256" in defect


def test_a_member_changed_behind_the_manifests_back_is_caught(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    name = hostile.first_file(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.tamper_member(good)))
    assert name in defect and "sha256" in defect


def test_a_consistent_forgery_of_a_database_page_is_caught_by_integrity_check(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    name = hostile.agent_database(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.forge_database_page(good)))
    assert defect.startswith(f"{name}: integrity_check failed")


def test_an_index_that_drifted_from_its_table_is_caught_by_the_full_integrity_check(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    name = hostile.agent_database(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.forge_index_drift(good)))
    assert defect.startswith(f"{name}: integrity_check failed")
    assert "index" in defect


def test_a_database_whose_schema_sqlite_cannot_quote_is_a_defect_not_a_crash(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    name = hostile.agent_database(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.forge_schema_text(good)))
    assert defect.startswith(f"{name}: integrity_check failed")
    assert "malformed database schema" in defect


def test_an_orphan_database_page_is_reported_on_one_line(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    name = hostile.agent_database(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.forge_orphan_page(good)))
    assert defect.startswith(f"{name}: integrity_check failed")
    assert "never used" in defect
    assert "\n" not in defect


def test_an_injected_wal_member_is_refused_by_name_even_when_the_manifest_lists_it(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    wal = hostile.agent_database(good_manifest)["archive_path"] + "-wal"
    defect = only_defect(rejected(tmp_path, hostile.inject_wal(good)))
    assert wal in defect and "sidecar" in defect


def test_a_member_with_an_absolute_name_is_refused(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.inject_absolute_name(good)))
    assert "/etc/cron.d/backupkit-hostile" in defect and "absolute" in defect


def test_a_member_climbing_out_with_dotdot_is_refused(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.inject_dotdot_name(good)))
    assert "state/../../escaped.txt" in defect and "'..'" in defect


def test_a_member_stored_beneath_a_symlink_is_refused(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    link = hostile.first_link(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.inject_under_symlink(good)))
    assert f"{link}/planted.txt" in defect and "symlink" in defect


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("hard-link", "hard link"),
        ("char-device", "device"),
        ("block-device", "device"),
        ("fifo", "fifo"),
    ],
)
def test_special_members_are_refused(good: bytes, tmp_path: Path, kind: str, named: str) -> None:
    defect = only_defect(rejected(tmp_path, hostile.inject_special(good, kind)))
    assert f"state/hostile-{kind}" in defect and named in defect


def test_a_symlink_pointing_elsewhere_than_its_manifest_entry_is_caught(
    good: bytes, good_manifest: dict, tmp_path: Path
) -> None:
    link = hostile.first_link(good_manifest)["archive_path"]
    defect = only_defect(rejected(tmp_path, hostile.retarget_symlink(good)))
    assert link in defect and "symlink" in defect


def test_a_newer_format_version_asks_for_an_upgrade(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.set_format_version(good, 2)))
    assert "format_version 2" in defect
    assert re.search(r"newer.*upgrade", defect)


def test_a_manifest_that_is_not_json_is_named(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.manifest_not_json(good)))
    assert "manifest.json" in defect and "not valid JSON" in defect


def test_an_archive_without_a_manifest_is_named(good: bytes, tmp_path: Path) -> None:
    defect = only_defect(rejected(tmp_path, hostile.drop_manifest(good)))
    assert "no manifest.json" in defect


# --------------------------------------------------------------------------------------------
# The checked-in set
# --------------------------------------------------------------------------------------------

DOCUMENTED = hostile.read_readme((HOSTILE_DIR / "README.md").read_text())


def test_the_readme_documents_exactly_the_checked_in_archives_each_a_few_kb() -> None:
    on_disk = {p.name for p in HOSTILE_DIR.glob("*.tar.zst")}
    assert set(DOCUMENTED) == on_disk == {case.file for case in hostile.CASES}
    assert all((HOSTILE_DIR / name).stat().st_size <= 8 * 1024 for name in on_disk)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_checked_in_archive_gives_its_documented_exit_code_and_defect(
    name: str, tmp_path: Path
) -> None:
    code, pattern = DOCUMENTED[name]
    verdict = run_verify(HOSTILE_DIR / name, env={"HOME": os.fspath(tmp_path)})
    assert verdict.code == code, (verdict.code, verdict.stderr)
    if code == 0:
        assert verdict.report["ok"] is True
        return
    assert re.search(pattern, verdict.error, re.IGNORECASE), verdict.error
    if code == 1:
        assert any(re.search(pattern, d, re.IGNORECASE) for d in verdict.defects)
