"""uvicorn with Pleno's shutdown sequence.

First SIGTERM: readiness fails at once, traffic is still served for PLENO_SHUTDOWN_DELAY
seconds (endpoint removal takes that long to reach every proxy), then uvicorn stops accepting,
drains in-flight requests for up to PLENO_DRAIN_TIMEOUT seconds, and the lifespan closes pools.
A second SIGTERM or SIGINT forces a quick exit. SIGINT alone (Ctrl-C on a terminal) skips the
delay: nothing routes to a terminal session through a load balancer.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import importlib.util
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn

from pleno.app import create_app
from pleno.readiness import Readiness
from pleno.settings import Settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FORCED = 1
EXIT_STARTUP_FAILED = 3
_HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, readiness: Readiness, shutdown_delay: float):
        super().__init__(config)
        self._readiness = readiness
        self._shutdown_delay = shutdown_delay
        self._stop_accepting_at: float | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Unlike uvicorn's, this does not re-raise the signal afterwards: a graceful stop
        # exits 0, which Kubernetes and Docker report as a clean termination.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal interrupts whatever code runs, possibly inside a request: log from an empty
        # context so these lines do not carry that request's id.
        contextvars.Context().run(self._begin_shutdown, sig)

    def _begin_shutdown(self, sig: int) -> None:
        if self._stop_accepting_at is not None:
            logger.warning("second %s: forcing exit", signal.Signals(sig).name)
            self.force_exit = True
            self.should_exit = True
            return
        delay = 0.0 if sig == signal.SIGINT else self._shutdown_delay
        self._readiness.start_draining()
        self._stop_accepting_at = time.monotonic() + delay
        logger.info(
            "%s: readiness now fails; serving %.1fs more, then draining",
            signal.Signals(sig).name,
            delay,
        )

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Everything made so far (modules, models, pools) lives as long as the process: move it
        # out of the collector's reach, so collections triggered by request garbage do not
        # rescan it. Full-collection pauses otherwise show up in p99 (docs/benchmarks.md).
        gc.freeze()

    async def on_tick(self, counter: int) -> bool:
        if self._stop_accepting_at is not None and time.monotonic() >= self._stop_accepting_at:
            self.should_exit = True
        return await super().on_tick(counter)


def serve(settings: Settings) -> int:
    """Run the service until it is stopped; return the process exit code."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # One worker per process by design: scale with replicas, not workers.
        workers=1,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        lifespan="on",
        log_config=None,  # logging is configured by pleno.observability.logging
        access_log=False,  # TelemetryMiddleware writes the one access line per request
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout),
    )
    server = GracefulServer(config, app.state.readiness, settings.shutdown_delay)
    server.run()
    if not server.started:
        return EXIT_STARTUP_FAILED
    return EXIT_FORCED if server.force_exit else EXIT_OK
