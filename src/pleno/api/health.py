"""Liveness, readiness and the readiness switch used in drain and canary drills."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from pleno.api.deps import EngineDep, ReadinessDep, SettingsDep, require_admin
from pleno.db.engine import ping

router = APIRouter(tags=["probes"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: answers while the event loop runs. Never touches the database, so a database
    outage cannot make Kubernetes restart every pod at once."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "Not ready; the body names each check"}})
async def ready(
    request: Request, readiness: ReadinessDep, engine: EngineDep, settings: SettingsDep
) -> JSONResponse:
    checks: dict[str, dict[str, Any]] = {
        "database": await _database_check(engine, settings.ready_timeout),
        "draining": _flag_check(readiness.draining, "shutting down"),
        "enabled": _flag_check(readiness.disabled, "disabled by POST /ready/disable"),
    }
    ok = all(check["ok"] for check in checks.values())
    if request.app.state.metrics is not None:
        request.app.state.metrics.ready.set(1 if ok else 0)
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
    )


@router.post("/ready/disable", dependencies=[Depends(require_admin)])
async def disable_readiness(readiness: ReadinessDep) -> dict[str, bool]:
    readiness.disabled = True
    return {"enabled": False}


@router.post("/ready/enable", dependencies=[Depends(require_admin)])
async def enable_readiness(readiness: ReadinessDep) -> dict[str, bool]:
    readiness.disabled = False
    return {"enabled": True}


async def _database_check(engine: EngineDep, limit_s: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(limit_s):
            await ping(engine)
    except TimeoutError:
        return {"ok": False, "reason": f"no answer within {limit_s:g}s"}
    except Exception as error:
        return {"ok": False, "reason": f"{type(error).__name__}: {error}".splitlines()[0]}
    return {"ok": True}


def _flag_check(failing: bool, reason: str) -> dict[str, Any]:
    return {"ok": False, "reason": reason} if failing else {"ok": True}
