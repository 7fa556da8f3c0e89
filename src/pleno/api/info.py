"""Service identity: what runs, which build, where, and for how long."""

from __future__ import annotations

import platform
import socket
import time

from fastapi import APIRouter, Request

from pleno import __version__
from pleno.api.deps import SettingsDep

router = APIRouter(tags=["info"])


@router.get("/")
async def service_info(request: Request, settings: SettingsDep) -> dict[str, object]:
    started: float = request.app.state.started_monotonic
    return {
        "service": settings.service_name,
        "version": __version__,
        "hostname": socket.gethostname(),
        "pod": settings.pod_name or socket.gethostname(),
        "namespace": settings.pod_namespace,
        "uptime_seconds": round(time.monotonic() - started, 3),
    }


@router.get("/version")
async def version(settings: SettingsDep) -> dict[str, str]:
    return {
        "version": __version__,
        "commit": settings.build_commit,
        "build_date": settings.build_date,
        "python": platform.python_version(),
    }
