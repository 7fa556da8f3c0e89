"""/ and /version."""

from __future__ import annotations

import platform
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pleno import __version__
from tests.conftest import AppClient, make_settings, start_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def built_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    settings = make_settings(
        f"sqlite:///{tmp_path}/db.sqlite",
        build_commit="abc1234",
        build_date="2026-11-28T00:00:00Z",
        pod_name="pleno-7d9f-x2x",
        pod_namespace="pleno",
    )
    async for client in start_client(settings):
        yield client


async def test_version_reports_the_build(built_client: AppClient) -> None:
    response = await built_client.get("/version")
    assert response.json() == {
        "version": __version__,
        "commit": "abc1234",
        "build_date": "2026-11-28T00:00:00Z",
        "python": platform.python_version(),
    }


async def test_version_has_defaults_without_build_values(sqlite_client: AppClient) -> None:
    body = (await sqlite_client.get("/version")).json()
    assert body["commit"] == "unknown"
    assert body["build_date"] == "unknown"


async def test_root_reports_identity_and_uptime(built_client: AppClient) -> None:
    first = (await built_client.get("/")).json()
    assert first["service"] == "pleno"
    assert first["version"] == __version__
    assert first["pod"] == "pleno-7d9f-x2x"
    assert first["namespace"] == "pleno"
    assert first["hostname"]
    assert first["uptime_seconds"] >= 0
    second = (await built_client.get("/")).json()
    assert second["uptime_seconds"] >= first["uptime_seconds"]


async def test_root_falls_back_to_the_hostname(sqlite_client: AppClient) -> None:
    body = (await sqlite_client.get("/")).json()
    assert body["pod"] == body["hostname"]
    assert body["namespace"] is None
