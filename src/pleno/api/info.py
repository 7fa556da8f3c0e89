"""Service identity: what runs, which build, where, and for how long."""

from __future__ import annotations

import platform
import socket
import time

from fastapi import APIRouter, Request

from pleno import __version__
from pleno.settings import Settings

router = APIRouter(tags=["info"])

# These two read the settings from app.state rather than through SettingsDep: FastAPI took about
# 8 µs per request to resolve that dependency (measured with bench/attribution.py), more than the
# rest of /version, and the settings never change while the app runs.


@router.get("/")
async def service_info(request: Request) -> dict[str, object]:
    settings: Settings = request.app.state.settings
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
async def version(request: Request) -> dict[str, str]:
    settings: Settings = request.app.state.settings
    return {
        "version": __version__,
        "commit": settings.build_commit,
        "build_date": settings.build_date,
        "python": platform.python_version(),
    }
