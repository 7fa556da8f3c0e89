"""Every route of the service, in one place."""

from fastapi import APIRouter, Depends

from pleno.api import chain, chaos, health, info, items, metrics, work
from pleno.api.deps import inject_fault

router = APIRouter()
# Probes, /metrics, info and control endpoints: never subject to fault injection, so a chaos
# drill cannot get pods restarted or unrouted by itself.
for module in (health, metrics, info, chaos):
    router.include_router(module.router)
# The API under /api: random latency and 500/503 per PLENO_CHAOS_* settings.
for module in (items, work, chain):
    router.include_router(module.router, dependencies=[Depends(inject_fault)])
