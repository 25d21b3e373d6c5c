"""The placement engine: how a proven file, a directory and a link take their places, and what
the archive can make impossible (exit 1) versus what the machine refuses (exit 4)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backupkit.archive.policy import contained
from backupkit.errors import IntegrityError
from backupkit.fsutil import iter_dirs, remove_tree
from backupkit.restore.place import (
    first_missing,
    place_dir,
    place_file,
    place_link,
    seal_directories,
)


def test_a_file_is_moved_into_place_with_its_mode(tmp_path: Path) -> None:
    src = tmp_path / "spooled"
    src.write_bytes(b"data")
    dest = tmp_path / "root" / "a" / "b.txt"
    place_file("state/a/b.txt", src, dest, 0o600)
    assert dest.read_bytes() == b"data" and not src.exists()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_a_second_file_for_the_same_place_is_the_archives_defect(tmp_path: Path) -> None:
    dest = tmp_path / "x"
    dest.write_bytes(b"first")
    src = tmp_path / "spooled"
    src.write_bytes(b"second")
    with pytest.raises(IntegrityError, match="restored twice"):
        place_file("state/x", src, dest, 0o644)
    assert dest.read_bytes() == b"first"


def test_a_file_under_a_file_is_the_archives_defect(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"a file")
    src = tmp_path / "spooled"
    src.write_bytes(b"x")
    with pytest.raises(IntegrityError, match="cannot be placed"):
        place_file("state/f/g", src, tmp_path / "f" / "g", 0o644)


def test_a_link_is_created_as_its_text_and_never_followed(tmp_path: Path) -> None:
    dest = tmp_path / "root" / "link"
    place_link("state/link", "/etc/passwd", dest)
    assert os.readlink(dest) == "/etc/passwd"
    with pytest.raises(IntegrityError):
        place_link("state/link", "elsewhere", dest)


def test_a_directory_can_be_placed_twice(tmp_path: Path) -> None:
    place_dir("state/d", tmp_path / "d")
    place_dir("state/d", tmp_path / "d")
    assert (tmp_path / "d").is_dir()


def test_directory_modes_go_on_after_every_directory_is_synced(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "inner").mkdir(parents=True)
    (top / "inner" / "f").write_bytes(b"x")
    seal_directories(tmp_path, [(top, 0o700), (top / "inner", 0o000)])
    assert stat.S_IMODE((top / "inner").stat().st_mode) == 0o000
    assert stat.S_IMODE(top.stat().st_mode) == 0o700
    os.chmod(top / "inner", 0o700)


def test_first_missing_names_the_outermost_directory_a_restore_creates(tmp_path: Path) -> None:
    assert first_missing(tmp_path / "a" / "b" / "c") == tmp_path / "a"
    assert first_missing(tmp_path) is None


@pytest.mark.parametrize("relative", ["../escape", "a/../../escape", "/etc/passwd", "a/./../.."])
def test_a_destination_outside_its_root_is_refused(tmp_path: Path, relative: str) -> None:
    with pytest.raises(IntegrityError, match="outside"):
        contained(tmp_path / "root", relative)


def test_a_destination_with_url_characters_stays_a_plain_name(tmp_path: Path) -> None:
    root = tmp_path / "with#hash?and%41"
    assert contained(root, "state.sqlite") == root / "state.sqlite"


def test_a_tree_deeper_than_the_recursion_limit_is_walked_and_removed(tmp_path: Path) -> None:
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1100):  # one level at a time: os.makedirs itself recurses
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    assert len(iter_dirs(top)) == 1101
    remove_tree(top)
    assert not top.exists()
