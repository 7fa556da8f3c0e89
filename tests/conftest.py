"""Shared test plumbing: the CI skip guard, database fixtures, and an in-process client."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from pleno.app import create_app
from pleno.settings import Settings
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.require_all import (  # noqa: F401 - hooks, registered by being here
    pytest_make_collect_report,
    pytest_runtest_makereport,
)

ADMIN_TOKEN = "tok-Very-Secret-42"
POSTGRES_ADMIN_URL = os.environ.get(
    "PLENO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings, the OTel SDK and child `pleno serve` processes all read OTEL_*: a developer's
    # shell must not decide whether or where a test exports. Tests that want tracing say so.
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP/HTTP trace receiver on loopback."""
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped at the end."""
    import asyncio  # noqa: PLC0415

    import asyncpg  # noqa: PLC0415

    admin = POSTGRES_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"pleno_test_{uuid.uuid4().hex[:12]}"

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(admin, timeout=3)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    try:
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        pytest.skip(f"PostgreSQL not reachable at {admin}: {error}")
    base, _, _ = admin.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(run(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/pleno.db"
    url: str = request.getfixturevalue("postgres_database")
    return url


def make_settings(database_url: str, **overrides: object) -> Settings:
    # Explicit values, so a developer's PLENO_* environment cannot change test outcomes.
    values: dict[str, object] = {
        "database_url": database_url,
        "migrate_on_start": True,
        "shutdown_delay": 0,
        "admin_token": None,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


async def _reset(app: FastAPI) -> None:
    from sqlalchemy import delete  # noqa: PLC0415

    from pleno.db.models import Item  # noqa: PLC0415

    async with app.state.sessionmaker() as session:
        await session.execute(delete(Item))
        await session.commit()


class AppClient(httpx.AsyncClient):
    app: FastAPI


async def start_client(settings: Settings, *, reset: bool = True) -> AsyncIterator[AppClient]:
    """An in-process client for a fresh app, with its lifespan running (and items emptied)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        if reset:
            await _reset(app)
        transport = httpx.ASGITransport(app=app)
        async with AppClient(transport=transport, base_url="http://pleno.test") as client:
            client.app = app
            yield client


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AppClient]:
    async for value in start_client(make_settings(database_url)):
        yield value


@pytest.fixture
async def sqlite_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    async for value in start_client(make_settings(f"sqlite:///{tmp_path}/pleno.db")):
        yield value


@pytest.fixture
async def traced_client(tmp_path: Path, receiver: OtlpReceiver) -> AsyncIterator[AppClient]:
    """An in-process app that traces every request to `receiver`."""
    settings = make_settings(
        f"sqlite:///{tmp_path}/db.sqlite",
        otel_exporter_otlp_endpoint=receiver.endpoint,
        otel_traces_sampler="always_on",
    )
    async for client in start_client(settings):
        yield client


@pytest.fixture
async def guarded_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    """An app whose control endpoints require ADMIN_TOKEN."""
    settings = make_settings(f"sqlite:///{tmp_path}/db.sqlite", admin_token=ADMIN_TOKEN)
    async for client in start_client(settings):
        yield client


@pytest.fixture
async def chaotic_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    """An app that injects a fault (500 or 503, after up to 20 ms) into every /api request."""
    settings = make_settings(
        f"sqlite:///{tmp_path}/db.sqlite", chaos_error_rate=1.0, chaos_latency_ms=20, chaos_seed=7
    )
    async for client in start_client(settings):
        yield client
