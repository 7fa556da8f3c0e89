"""Every route of the service, in one place."""

from fastapi import APIRouter

from pleno.api import chain, chaos, health, info, items, metrics, work

router = APIRouter()
for module in (health, metrics, info, items, work, chain, chaos):
    router.include_router(module.router)
