"""Inject latency and 500/503 answers into /api/* only.

Probes, /metrics, /version and the control endpoints live outside /api, so a chaos drill can
never make Kubernetes restart or unroute a pod by itself.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send

from pleno.api.errors import problem
from pleno.chaos import FaultInjector

CHAOS_PREFIX = "/api/"


class ChaosMiddleware:
    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.injector.enabled
            or scope["type"] != "http"
            or not scope["path"].startswith(CHAOS_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        fault = self.injector.next_fault()
        if fault.latency_s:
            await asyncio.sleep(fault.latency_s)
        if fault.status is not None:
            await problem(fault.status, "injected fault (chaos testing)", injected=True)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)
