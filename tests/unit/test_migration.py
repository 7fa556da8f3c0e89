"""Migrations: HEAD_REVISION matches Alembic, and upgrading is idempotent on both databases."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory

from pleno.db import migration
from pleno.db.engine import create_engine
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


def test_head_revision_constant_matches_alembic() -> None:
    script = ScriptDirectory.from_config(migration.alembic_config())
    assert script.get_current_head() == migration.HEAD_REVISION


async def test_upgrade_creates_then_skips(database_url: str) -> None:
    engine = create_engine(make_settings(database_url))
    try:
        await migration.upgrade(engine)  # the client fixture may have run it already
        assert await migration.current_revision(engine) == migration.HEAD_REVISION
        await migration.upgrade(engine)  # current: returns without running Alembic
        assert await migration.current_revision(engine) == migration.HEAD_REVISION
    finally:
        await engine.dispose()


async def test_fresh_database_has_no_revision(tmp_path: object) -> None:
    engine = create_engine(make_settings(f"sqlite:///{tmp_path}/fresh.db"))
    try:
        assert await migration.current_revision(engine) is None
    finally:
        await engine.dispose()
