"""The published manifest schema is the one the models generate, and real manifests obey it."""

from __future__ import annotations

from pathlib import Path

import orjson

from backupkit.archive.manifest import Manifest, manifest_json_schema_text
from fixtures import StateTree
from tests.conftest import REPO, backup_ok, manifest_of


def test_published_schema_matches_the_models() -> None:
    published = (REPO / "docs" / "manifest.schema.json").read_text()
    assert published == manifest_json_schema_text(), "regenerate it: scripts/gen-schema"


def test_schema_requires_every_contract_field() -> None:
    schema = orjson.loads(manifest_json_schema_text())
    assert {
        "backup_id",
        "created_at",
        "reason",
        "tool_version",
        "state_dir",
        "databases",
        "files",
        "skipped",
    } <= set(schema["required"])
    db = schema["$defs"]["DatabaseEntry"]["required"]
    assert {
        "role",
        "agent_id",
        "schema_version",
        "user_version",
        "source_path",
        "archive_path",
        "size_bytes",
        "sha256",
        "integrity",
    } <= set(db)


def test_a_real_manifest_validates_against_the_models(state: StateTree, out_dir: Path) -> None:
    manifest = manifest_of(backup_ok(state, out_dir))
    assert Manifest.model_validate(manifest).model_dump(mode="json") == manifest
