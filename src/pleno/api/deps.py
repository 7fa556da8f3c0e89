"""Typed dependencies: handlers reach lifespan resources only through these."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from pleno.api.errors import ProblemError
from pleno.chaos import FaultInjector
from pleno.db.repository import ItemRepository
from pleno.readiness import Readiness
from pleno.services.items import ItemService
from pleno.settings import Settings


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _readiness(request: Request) -> Readiness:
    readiness: Readiness = request.app.state.readiness
    return readiness


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http_client
    return client


async def _work_limiter(request: Request) -> anyio.CapacityLimiter:
    limiter: anyio.CapacityLimiter = request.app.state.work_limiter
    return limiter


async def _item_service(request: Request) -> AsyncIterator[ItemService]:
    async with request.app.state.sessionmaker() as session:
        yield ItemService(ItemRepository(session))


SettingsDep = Annotated[Settings, Depends(_settings)]
ReadinessDep = Annotated[Readiness, Depends(_readiness)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(_http_client)]
WorkLimiterDep = Annotated[anyio.CapacityLimiter, Depends(_work_limiter)]
ItemServiceDep = Annotated[ItemService, Depends(_item_service)]


async def inject_fault(request: Request) -> None:
    """Chaos for /api routes: runs after routing, so an injected fault is still measured
    under its route template and counts against the API's SLOs like a real one."""
    injector: FaultInjector = request.app.state.fault_injector
    if not injector.enabled:
        return
    fault = injector.next_fault()
    if fault.latency_s:
        await asyncio.sleep(fault.latency_s)
    if fault.status is not None:
        raise ProblemError(fault.status, "injected fault (chaos testing)", injected=True)


# The dependencies of every /api router: chaos applies to the API and nothing else.
FAULT_INJECTION = [Depends(inject_fault)]

_bearer = HTTPBearer(auto_error=False)


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Guard control endpoints with PLENO_ADMIN_TOKEN when it is set (open when unset)."""
    if settings.admin_token is None:
        return
    expected = settings.admin_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials else b""
    if not hmac.compare_digest(given, expected):
        raise ProblemError(401, "a valid admin bearer token is required")
