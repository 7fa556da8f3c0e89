"""On-demand faults: answer with any status, or after a delay."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Path, Response

from pleno.api.deps import SettingsDep
from pleno.api.errors import ProblemError, problem

router = APIRouter(tags=["fault injection"])

# These statuses forbid a body (RFC 9110).
_BODYLESS = {204, 205, 304}


@router.get("/status/{code}")
async def status(code: Annotated[int, Path(ge=200, le=599)]) -> Response:
    if code in _BODYLESS:
        return Response(status_code=code)
    if code >= 400:
        return problem(code, f"status {code} requested via /status")
    return Response(f'{{"status":{code}}}', status_code=code, media_type="application/json")


@router.get("/delay/{seconds}")
async def delay(seconds: Annotated[float, Path(ge=0)], settings: SettingsDep) -> dict[str, float]:
    if seconds > settings.delay_max_seconds:
        raise ProblemError(422, f"seconds must be at most {settings.delay_max_seconds:g}")
    await anyio.sleep(seconds)
    return {"delayed_seconds": seconds}
