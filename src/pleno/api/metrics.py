"""GET /metrics: Prometheus text format, or OpenMetrics (with exemplars) when asked for."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import choose_encoder

from pleno.observability.metrics import Metrics

router = APIRouter(tags=["probes"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry_owner: Metrics | None = request.app.state.metrics
    if registry_owner is None:
        return Response(status_code=404)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(registry_owner.registry), media_type=content_type)
