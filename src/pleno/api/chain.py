"""GET /api/v1/chain: call every downstream, for distributed-tracing demos."""

from __future__ import annotations

import socket
from typing import Annotated

from fastapi import APIRouter, Header

from pleno import __version__
from pleno.api.deps import FAULT_INJECTION, HttpClientDep, SettingsDep
from pleno.api.errors import ProblemError
from pleno.context import current_request_id
from pleno.services.chain import call_downstreams

router = APIRouter(prefix="/api/v1", tags=["demo"], dependencies=FAULT_INJECTION)


@router.get("/chain")
async def chain(
    settings: SettingsDep,
    client: HttpClientDep,
    depth: Annotated[int, Header(alias="X-Pleno-Chain-Depth", ge=0)] = 0,
) -> dict[str, object]:
    if depth >= settings.chain_max_depth:
        # A chain configured into a loop would otherwise recurse until something times out.
        raise ProblemError(
            508, f"call chain depth {depth} reached the limit {settings.chain_max_depth}"
        )
    results = await call_downstreams(
        client, [str(url) for url in settings.downstream_urls], depth, current_request_id.get()
    )
    identity = {
        "service": settings.service_name,
        "version": __version__,
        "pod": settings.pod_name or socket.gethostname(),
    }
    downstreams = [
        {
            "url": result.url,
            "status": result.status,
            "latency_ms": result.latency_ms,
            **({"error": result.error} if result.error else {}),
            "body": result.body,
        }
        for result in results
    ]
    if not all(result.ok for result in results):
        failed = sum(not result.ok for result in results)
        raise ProblemError(
            502,
            f"{failed} of {len(results)} downstream calls failed",
            identity=identity,
            depth=depth,
            downstreams=downstreams,
        )
    return {"identity": identity, "depth": depth, "downstreams": downstreams}
