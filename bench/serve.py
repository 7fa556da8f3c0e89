"""Run a reference app under uvicorn with the same server settings as ``pleno serve``.

pleno.server builds its uvicorn.Config the same way: one worker, uvloop, httptools, lifespan on,
no Server header. Only logging differs by app, and only because logging is what is measured.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn


def run(app: Any, *, access_log: bool = False, log_config: dict[str, Any] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        # Bare: warnings only and no access log, as the acceptance text asks. The anchor turns
        # the access log on (at INFO), because a JSON line per request is part of its stack.
        log_level="info" if access_log else "warning",
        access_log=access_log,
        log_config=log_config if log_config is not None else uvicorn.config.LOGGING_CONFIG,
        server_header=False,
    )
    uvicorn.Server(config).run()
