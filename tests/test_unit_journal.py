"""The in-place journal, phase by phase: a journal written by hand, then recovery, then the
state it must leave. No archive and no CLI: only the journal's own rules."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from backupkit.restore.journal import Entry, Journal, recover, temp_sibling
from backupkit.state.layout import JOURNAL_NAME, StateLayout, layout_for


def _layout(tmp_path: Path) -> StateLayout:
    state = tmp_path / "state"
    (state / "workspace").mkdir(parents=True)
    return layout_for(state)


def _entry(dest: Path, rid: str, *, old: bytes | None, new: bytes) -> Entry:
    staged = temp_sibling(dest, rid, "new")
    staged.write_bytes(new)
    aside = None
    if old is not None:
        dest.write_bytes(old)
        aside = temp_sibling(dest, rid, "old")
    return Entry(os.fspath(dest), os.fspath(staged), os.fspath(aside) if aside else None, [])


def _journal(layout: StateLayout, phase: str, entries: list[Entry]) -> Journal:
    journal = Journal("abcd1234", "/archive.tar.zst", os.fspath(layout.state_dir), phase, entries)
    journal.save()
    return journal


def _names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_no_journal_means_nothing_to_recover(tmp_path: Path) -> None:
    assert recover(_layout(tmp_path)) is None


def test_a_staging_journal_rolls_back_and_leaves_the_old_files(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    dest = layout.state_dir / "workspace" / "todo"
    _journal(layout, "staging", [_entry(dest, "abcd1234", old=b"old", new=b"new")])
    message = recover(layout)
    assert message is not None and "rolled back" in message
    assert dest.read_bytes() == b"old"
    assert _names(dest.parent) == ["todo"]
    assert not (layout.state_dir / JOURNAL_NAME).exists()


def test_a_swapping_journal_rolls_forward_and_drops_the_old_files(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    first = layout.state_dir / "workspace" / "a"
    second = layout.state_dir / "workspace" / "b"
    entries = [
        _entry(first, "abcd1234", old=b"old-a", new=b"new-a"),
        _entry(second, "abcd1234", old=None, new=b"new-b"),
    ]
    _journal(layout, "swapping", entries)
    # The run died after the first rename of the first entry: its old file is already aside.
    os.rename(first, entries[0].aside)  # type: ignore[arg-type]
    message = recover(layout)
    assert message is not None and "completed" in message
    assert first.read_bytes() == b"new-a" and second.read_bytes() == b"new-b"
    assert _names(first.parent) == ["a", "b"]


def test_a_committed_journal_only_cleans_up(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    dest = layout.state_dir / "workspace" / "todo"
    entry = _entry(dest, "abcd1234", old=b"old", new=b"new")
    os.rename(dest, entry.aside)  # type: ignore[arg-type]
    os.rename(entry.staged, dest)  # type: ignore[arg-type]
    _journal(layout, "committed", [entry])
    assert "completed" in (recover(layout) or "")
    assert dest.read_bytes() == b"new" and _names(dest.parent) == ["todo"]


def test_a_directory_replaced_by_a_file_is_removed_at_commit_not_left_hidden(
    tmp_path: Path,
) -> None:
    layout = _layout(tmp_path)
    dest = layout.state_dir / "workspace" / "todo"
    (dest / "deep").mkdir(parents=True)
    (dest / "deep" / "note.md").write_text("in the safety snapshot")
    staged = temp_sibling(dest, "abcd1234", "new")
    staged.write_bytes(b"a file now")
    aside = temp_sibling(dest, "abcd1234", "old")
    _journal(layout, "swapping", [Entry(os.fspath(dest), os.fspath(staged), os.fspath(aside))])
    recover(layout)
    assert dest.read_bytes() == b"a file now"
    assert _names(dest.parent) == ["todo"]


def test_a_journal_naming_a_path_outside_the_state_is_set_aside_unread(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    victim = tmp_path / "elsewhere" / "precious"
    victim.parent.mkdir()
    victim.write_bytes(b"not yours")
    aside = temp_sibling(victim, "abcd1234", "old")
    _journal(layout, "committed", [Entry(os.fspath(victim), None, os.fspath(aside))])
    os.rename(victim, aside)  # what a forged journal would have the next run unlink
    message = recover(layout)
    assert message is not None and "set aside" in message
    assert aside.read_bytes() == b"not yours", "nothing the journal names was touched"
    assert not (layout.state_dir / JOURNAL_NAME).exists()
    assert (layout.state_dir / f"{JOURNAL_NAME}.rejected").exists()
    assert recover(layout) is None, "the next run is not refused"


def test_a_journal_whose_temporary_name_is_not_beside_its_destination_is_refused(
    tmp_path: Path,
) -> None:
    layout = _layout(tmp_path)
    dest = layout.state_dir / "workspace" / "todo"
    dest.write_bytes(b"old")
    stray = tmp_path / "outside.new"
    stray.write_bytes(b"planted")
    _journal(layout, "swapping", [Entry(os.fspath(dest), os.fspath(stray), None)])
    assert "set aside" in (recover(layout) or "")
    assert dest.read_bytes() == b"old" and stray.read_bytes() == b"planted"


def test_a_journal_that_is_not_json_is_set_aside(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    (layout.state_dir / JOURNAL_NAME).write_bytes(b"{not json")
    assert "set aside" in (recover(layout) or "")
    assert recover(layout) is None


def test_a_journal_of_another_state_dir_is_refused(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    body = {
        "restore_id": "abcd1234",
        "archive": "/a.tar.zst",
        "state_dir": os.fspath(tmp_path / "other"),
        "phase": "committed",
        "entries": [],
        "created_dirs": [],
        "dir_modes": [],
        "safety_snapshot": None,
    }
    (layout.state_dir / JOURNAL_NAME).write_bytes(orjson.dumps(body))
    assert "belongs to" in (recover(layout) or "")


def test_a_journal_naming_a_created_directory_that_holds_nothing_it_restores_is_refused(
    tmp_path: Path,
) -> None:
    layout = _layout(tmp_path)
    dest = layout.state_dir / "workspace" / "todo"
    entry = _entry(dest, "abcd1234", old=None, new=b"new")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    journal = Journal(
        "abcd1234", "/a", os.fspath(layout.state_dir), "staging", [entry], [os.fspath(elsewhere)]
    )
    journal.save()
    assert "holds nothing it restores" in (recover(layout) or "")
    assert elsewhere.is_dir() and Path(entry.staged or "").exists()
