"""GET /api/v1/work: spend real CPU so the HPA has something to scale on."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Query

from pleno.api.deps import FAULT_INJECTION, SettingsDep, WorkLimiterDep
from pleno.api.errors import ProblemError
from pleno.services.work import burn_cpu

router = APIRouter(prefix="/api/v1", tags=["demo"], dependencies=FAULT_INJECTION)


@router.get("/work")
async def work(
    settings: SettingsDep,
    limiter: WorkLimiterDep,
    cpu_ms: Annotated[int, Query(ge=0, description="CPU milliseconds to burn")] = 100,
) -> dict[str, object]:
    if cpu_ms > settings.work_max_cpu_ms:
        raise ProblemError(422, f"cpu_ms must be at most {settings.work_max_cpu_ms}")
    # In a worker thread, behind a small limiter: the event loop stays free for probes, and
    # excess calls queue instead of piling threads onto two cores.
    result = await anyio.to_thread.run_sync(burn_cpu, cpu_ms, limiter=limiter)
    return {
        "cpu_ms_requested": result.cpu_ms_requested,
        "cpu_ms_used": result.cpu_ms_used,
        "rounds": result.rounds,
        "sha256": result.digest,
    }
