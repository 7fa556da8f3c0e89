"""Engine construction and the database errors that mean "unavailable", not "bug"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from pleno.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """Create the engine; every wait it can do is bounded by ``settings.db_timeout``."""
    url = make_url(settings.database_url)
    if settings.is_sqlite:
        _ensure_sqlite_directory(url.database)
        engine = create_async_engine(
            url,
            connect_args={"timeout": settings.db_timeout},  # busy-wait bound on a locked file
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_timeout,
        # A restarted PostgreSQL leaves dead sockets in the pool; pre-ping replaces them, so
        # the service recovers without a restart.
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"timeout": settings.db_timeout, "command_timeout": settings.db_timeout},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def is_unavailable(error: BaseException) -> bool:
    """True when the error means the database cannot be reached or answered too slowly."""
    if isinstance(error, exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, exc.OperationalError | exc.InterfaceError
        )
    return isinstance(error, exc.TimeoutError | TimeoutError | OSError)


def _ensure_sqlite_directory(database: str | None) -> None:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readiness probes read while a write is in progress.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
