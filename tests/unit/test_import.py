"""Nothing is created at import time: no engine, no client, no files, no threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import gc, os, threading
import pleno.app, pleno.cli, pleno.server, pleno.api.router
from sqlalchemy.ext.asyncio import AsyncEngine
import httpx
objects = gc.get_objects()
engines = [o for o in objects if isinstance(o, AsyncEngine)]
clients = [o for o in objects if isinstance(o, httpx.AsyncClient)]
print(len(engines), len(clients), threading.active_count(), os.path.exists("var"))
app = pleno.app.create_app(pleno.settings.Settings())
print(hasattr(app.state, "engine"), hasattr(app.state, "http_client"), os.path.exists("var"))
"""


def test_importing_and_building_the_app_creates_no_resources(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLENO_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    imported, built = result.stdout.splitlines()
    assert imported == "0 0 1 False"
    # The engine and the HTTP client belong to the lifespan, not to create_app.
    assert built == "False False False"
