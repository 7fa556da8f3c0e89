"""Apply the Alembic migrations shipped inside the package.

Alembic is imported only when the schema is behind: it costs ~10 MiB and a third of a second
at start, and a restarted pod almost always finds its schema current.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from sqlalchemy import Connection, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in migrations/versions. tests/unit/test_migration.py checks it against
# Alembic's own idea of head, so adding a migration without updating this fails the build.
HEAD_REVISION = "0001"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module docstring

    config = Config()
    config.set_main_option("script_location", str(files("pleno.db") / "migrations"))
    config.attributes["connection"] = connection
    return config


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's revision, or None for a database Alembic has never touched."""
    try:
        async with engine.connect() as connection:
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    except (exc.OperationalError, exc.ProgrammingError):  # no alembic_version table yet
        return None
    return str(revision) if revision is not None else None


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema to HEAD_REVISION; a no-op, without importing Alembic, if it is there."""
    if await current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command  # noqa: PLC0415 - see the module docstring

    async with engine.begin() as connection:
        await connection.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))
