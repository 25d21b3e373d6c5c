"""Every command's --help ends with examples, and every example names a real command with
options that command has, so the examples cannot drift from the tool."""

from __future__ import annotations

import shlex

import click
import pytest

from backupkit.cli import cli

from .conftest import run_cli


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [path]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out += _commands(command, (*path, name))
        else:
            out.append((*path, name))
    return out


COMMANDS = _commands(cli)


def _examples(path: tuple[str, ...]) -> list[str]:
    proc = run_cli(*path, "--help")
    assert proc.returncode == 0, proc.stderr
    _head, _, tail = proc.stdout.partition("Examples:\n")
    return [line.split("#")[0].strip() for line in tail.splitlines() if line.strip()]


def _options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"-h", "--help"}


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "backupkit")
def test_each_commands_help_ends_with_examples(path: tuple[str, ...]) -> None:
    assert _examples(path), f"backupkit {' '.join(path)} --help has no examples"


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "backupkit")
def test_each_example_runs_a_real_command_with_its_real_options(path: tuple[str, ...]) -> None:
    for example in _examples(path):
        words = shlex.split(example)
        assert words[0] == "backupkit", example
        command: click.Command = cli
        allowed = _options(cli)
        for word in words[1:]:
            if isinstance(command, click.Group) and word in command.commands:
                command = command.commands[word]
                allowed = _options(command) | _options(cli)
            elif word.startswith("-"):
                assert word.split("=")[0] in allowed, f"{word} in {example!r}"
        assert not isinstance(command, click.Group) or command is not cli, example
