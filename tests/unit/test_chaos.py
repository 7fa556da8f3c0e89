"""/status, /delay, and random fault injection confined to /api/*."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pleno.chaos import FaultInjector
from tests.conftest import AppClient, make_settings, start_client

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("code", [200, 201, 299, 302, 404, 418, 500, 503, 599])
async def test_status_answers_with_the_code(sqlite_client: AppClient, code: int) -> None:
    response = await sqlite_client.get(f"/status/{code}")
    assert response.status_code == code
    if code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("code", [204, 304])
async def test_status_without_body(sqlite_client: AppClient, code: int) -> None:
    response = await sqlite_client.get(f"/status/{code}")
    assert response.status_code == code
    assert response.content == b""


@pytest.mark.parametrize("code", ["100", "199", "600", "1000", "-1", "abc"])
async def test_status_outside_range_is_422(sqlite_client: AppClient, code: str) -> None:
    assert (await sqlite_client.get(f"/status/{code}")).status_code == 422


async def test_delay_waits(sqlite_client: AppClient) -> None:
    started = time.perf_counter()
    response = await sqlite_client.get("/delay/0.2")
    assert response.status_code == 200
    assert response.json() == {"delayed_seconds": 0.2}
    assert time.perf_counter() - started >= 0.2


@pytest.mark.parametrize("seconds", ["30.5", "-1", "soon"])
async def test_delay_out_of_bounds_is_422(sqlite_client: AppClient, seconds: str) -> None:
    assert (await sqlite_client.get(f"/delay/{seconds}")).status_code == 422


async def test_chaos_hits_every_api_request(chaotic_client: AppClient) -> None:
    statuses = {(await chaotic_client.get("/api/v1/items")).status_code for _ in range(20)}
    assert statuses == {500, 503}
    response = await chaotic_client.get("/api/v1/items")
    assert response.json()["injected"] is True
    assert response.headers["content-type"] == "application/problem+json"
    injector: FaultInjector = chaotic_client.app.state.fault_injector
    assert injector.injected_errors == 21
    assert injector.injected_latency_s > 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/version"),
        ("GET", "/"),
        ("POST", "/ready/disable"),
        ("POST", "/ready/enable"),
        ("GET", "/status/200"),
        ("GET", "/openapi.json"),
    ],
)
async def test_chaos_never_touches_probes_or_control(
    chaotic_client: AppClient, method: str, path: str
) -> None:
    for _ in range(10):
        response = await chaotic_client.request(method, path)
        assert response.status_code == 200, (path, response.text)
    assert chaotic_client.app.state.fault_injector.injected_errors == 0


def fault_sequence(seed: int | None, count: int = 200) -> list[tuple[float, int | None]]:
    injector = FaultInjector(error_rate=0.3, latency_ms=100, seed=seed)
    return [
        (fault.latency_s, fault.status) for fault in (injector.next_fault() for _ in range(count))
    ]


def test_seeded_fault_sequence_is_reproducible() -> None:
    assert fault_sequence(42) == fault_sequence(42)
    assert fault_sequence(42) != fault_sequence(43)


def test_fault_rate_and_latency_are_respected() -> None:
    faults = fault_sequence(1, count=2000)
    errors = [status for _, status in faults if status is not None]
    assert 0.25 < len(errors) / len(faults) < 0.35
    assert set(errors) == {500, 503}
    assert all(0 <= latency <= 0.1 for latency, _ in faults)


def test_disabled_injector_injects_nothing() -> None:
    injector = FaultInjector(error_rate=0, latency_ms=0, seed=None)
    assert not injector.enabled
    assert {injector.next_fault() for _ in range(100)} == {injector.next_fault()}
    assert injector.next_fault().status is None


@pytest.fixture
async def no_chaos_endpoints_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    settings = make_settings(f"sqlite:///{tmp_path}/db.sqlite", chaos_endpoints_enabled=False)
    async for client in start_client(settings):
        yield client


@pytest.mark.parametrize("path", ["/status/500", "/delay/0"])
async def test_chaos_endpoints_can_be_turned_off(
    no_chaos_endpoints_client: AppClient, path: str
) -> None:
    # Off, they do not exist: an unmatched 404, outside the API's SLO series.
    response = await no_chaos_endpoints_client.get(path)
    assert response.status_code == 404
    assert (await no_chaos_endpoints_client.get("/api/v1/items")).status_code == 200
