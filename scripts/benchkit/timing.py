"""One timed part of a run: a tree's scratch set up, its contenders timed in rounds, cleaned up.

The inputs every contender reads (the tree, the prepared snapshots, the verify archive) are read
once before round 1, so that the first contender is not the only one with a cold cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contenders import (
    backup_contenders,
    per_database_contenders,
    prepare_inputs,
    verify_contenders,
)
from .files import remove
from .rounds import Contender, run_rounds, warm_cache
from .trees import Tree


@dataclass
class TreeResult:
    tree: Tree
    rounds: int
    contenders: list[Contender]
    machine_load: dict[str, Any]  # how busy the machine was during the rounds

    def by_key(self) -> dict[str, Contender]:
        return {c.key: c for c in self.contenders}


@dataclass
class PerDatabaseResult:
    many: Tree
    few: Tree
    rounds: int
    contenders: list[Contender]
    machine_load: dict[str, Any]


def _fresh(scratch: Path) -> Path:
    remove(scratch)
    scratch.mkdir(parents=True)
    return scratch


def bench_tree(
    tree: Tree, rounds: int, with_restore: bool, scratch_root: Path, encrypted: bool = False
) -> TreeResult:
    scratch = _fresh(scratch_root / tree.spec.key)
    contenders = backup_contenders(tree, scratch, encrypted)
    archive, prepared = prepare_inputs(tree, scratch)
    contenders += verify_contenders(tree, scratch, archive, with_restore)
    warm_cache(tree.inputs)
    warm_cache(prepared)
    load = run_rounds(contenders, rounds, scratch / "rss.txt")
    remove(scratch)
    return TreeResult(tree, rounds, contenders, load)


def bench_per_database(many: Tree, few: Tree, rounds: int, scratch_root: Path) -> PerDatabaseResult:
    """Many small databases against the same bytes in a few large ones, in the same rounds."""
    scratch = _fresh(scratch_root / "per-database")
    contenders = per_database_contenders(many, few, scratch)
    for tree in (many, few):
        warm_cache(tree.inputs)
    load = run_rounds(contenders, rounds, scratch / "rss.txt")
    remove(scratch)
    return PerDatabaseResult(many, few, rounds, contenders, load)
