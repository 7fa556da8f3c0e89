"""Liveness, readiness and the readiness switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pleno.api import health
from tests.conftest import ADMIN_TOKEN, AppClient, make_settings, start_client

pytestmark = pytest.mark.anyio


async def test_health_is_ok(sqlite_client: AppClient) -> None:
    response = await sqlite_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_every_check(sqlite_client: AppClient) -> None:
    response = await sqlite_client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": {"ok": True}, "draining": {"ok": True}, "enabled": {"ok": True}},
    }


async def test_disable_and_enable_toggle_readiness(sqlite_client: AppClient) -> None:
    disabled = await sqlite_client.post("/ready/disable")
    assert disabled.json() == {"enabled": False}
    response = await sqlite_client.get("/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["enabled"] == {"ok": False, "reason": "disabled by POST /ready/disable"}
    assert checks["database"]["ok"]
    assert (await sqlite_client.get("/health")).status_code == 200, "liveness is unaffected"
    await sqlite_client.post("/ready/enable")
    assert (await sqlite_client.get("/ready")).status_code == 200


async def test_draining_fails_readiness_but_not_liveness(sqlite_client: AppClient) -> None:
    sqlite_client.app.state.readiness.start_draining()
    response = await sqlite_client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["draining"] == {"ok": False, "reason": "shutting down"}
    assert (await sqlite_client.get("/health")).status_code == 200
    # Keep-alive clients are told to reconnect (to another pod) while this one drains.
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("path", ["/ready/disable", "/ready/enable"])
async def test_control_endpoints_require_the_admin_token(
    guarded_client: AppClient, path: str
) -> None:
    missing = await guarded_client.post(path)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await guarded_client.post(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = await guarded_client.post(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert right.status_code == 200


async def test_unreachable_database_fails_readiness_with_a_reason(tmp_path: Path) -> None:
    # Port 1 on loopback refuses at once: a database that is down, not a slow one.
    settings = make_settings(
        "postgresql://pleno@127.0.0.1:1/none", migrate_on_start=False, ready_timeout=2
    )
    async for client in start_client(settings, reset=False):
        response = await client.get("/ready")
        assert response.status_code == 503
        database = response.json()["checks"]["database"]
        assert database["ok"] is False
        assert database["reason"]
        assert (await client.get("/health")).status_code == 200


async def test_slow_database_fails_readiness_within_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang(engine: object) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(health, "ping", hang)
    settings = make_settings(f"sqlite:///{tmp_path}/db.sqlite", ready_timeout=0.2)
    async for client in start_client(settings):
        started = asyncio.get_running_loop().time()
        response = await client.get("/ready")
        elapsed = asyncio.get_running_loop().time() - started
        assert response.status_code == 503
        assert response.json()["checks"]["database"]["reason"] == "no answer within 0.2s"
        assert elapsed < 1.0
