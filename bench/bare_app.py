"""Bare FastAPI: the baseline every ratio in the report is taken against.

The same two endpoints the benchmark touches, with the same shape of answer as Pleno's, and
nothing else: no middleware, no dependencies, no telemetry. ``FastAPI()`` is left at its
defaults, as a user would write it; its built-in OpenTelemetry support stays dormant because
this process never installs a global SDK provider (see fastapi.telemetry, ``enabled()``).

Run: ``python -m bench.bare_app --port 8001``
"""

from __future__ import annotations

import platform

from fastapi import FastAPI

from bench.serve import run


def add_endpoints(app: FastAPI) -> None:
    """The two endpoints every reference app serves (the anchor and the lean one add these too)."""

    @app.get("/version")
    async def version() -> dict[str, str]:
        # Same keys and work as Pleno's /version (it also calls platform.python_version()).
        return {
            "version": "0.1.0",
            "commit": "unknown",
            "build_date": "unknown",
            "python": platform.python_version(),
        }

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}


app = FastAPI()
add_endpoints(app)

if __name__ == "__main__":
    run(app)
