"""/api/v1/chain, with in-process downstreams (the real two-process chain is integration)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pleno.services.chain import DEPTH_HEADER
from tests.conftest import AppClient, make_settings, start_client

pytestmark = pytest.mark.anyio

BACKEND = "http://backend.test"


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[AppClient]:
    settings = make_settings(f"sqlite:///{tmp_path}/backend.sqlite", service_name="backend")
    async for client in start_client(settings):
        yield client


async def frontend(
    tmp_path: Path, backend: AppClient, urls: list[str], **overrides: object
) -> AsyncIterator[AppClient]:
    settings = make_settings(
        f"sqlite:///{tmp_path}/frontend.sqlite",
        service_name="frontend",
        downstream_urls=urls,
        **overrides,
    )
    async for client in start_client(settings):
        # Route downstream calls to the in-process backend instead of the network.
        transport = httpx.ASGITransport(app=backend.app)
        async with httpx.AsyncClient(transport=transport, timeout=2) as downstream:
            client.app.state.http_client = downstream
            yield client


async def test_chain_without_downstreams_returns_identity(backend: AppClient) -> None:
    body = (await backend.get("/api/v1/chain")).json()
    assert body["identity"]["service"] == "backend"
    assert body["depth"] == 0
    assert body["downstreams"] == []


async def test_chain_calls_each_downstream(tmp_path: Path, backend: AppClient) -> None:
    urls = [f"{BACKEND}/api/v1/chain", f"{BACKEND}/version"]
    async for client in frontend(tmp_path, backend, urls):
        response = await client.get("/api/v1/chain", headers={"X-Request-ID": "chain-1"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["identity"]["service"] == "frontend"
        first, second = body["downstreams"]
        assert first["url"] == urls[0]
        assert first["status"] == 200
        assert first["body"]["identity"]["service"] == "backend"
        assert first["body"]["depth"] == 1
        assert isinstance(first["latency_ms"], int)
        assert "error" not in first
        assert second["body"]["commit"] == "unknown"


async def test_failing_downstream_is_502_with_details(tmp_path: Path, backend: AppClient) -> None:
    urls = [f"{BACKEND}/status/503", f"{BACKEND}/health"]
    async for client in frontend(tmp_path, backend, urls):
        response = await client.get("/api/v1/chain")
        assert response.status_code == 502
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["detail"] == "1 of 2 downstream calls failed"
        failed, healthy = problem["downstreams"]
        assert failed["status"] == 503
        assert failed["error"] == "HTTP 503"
        assert healthy["status"] == 200
        assert problem["identity"]["service"] == "frontend"


async def test_unreachable_downstream_is_502(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path}/f.sqlite", downstream_urls=["http://127.0.0.1:1/api/v1/chain"]
    )
    async for client in start_client(settings):
        response = await client.get("/api/v1/chain")
        assert response.status_code == 502
        (failed,) = response.json()["downstreams"]
        assert failed["status"] is None
        assert failed["error"].startswith("connection error")


async def test_depth_header_stops_loops(backend: AppClient) -> None:
    response = await backend.get("/api/v1/chain", headers={DEPTH_HEADER: "5"})
    assert response.status_code == 508
    assert "limit 5" in response.json()["detail"]
    assert (await backend.get("/api/v1/chain", headers={DEPTH_HEADER: "4"})).status_code == 200
    assert (await backend.get("/api/v1/chain", headers={DEPTH_HEADER: "-1"})).status_code == 422
