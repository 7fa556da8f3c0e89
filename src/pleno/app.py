"""The application factory. Long-lived resources are made in the lifespan, never at import."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI

from pleno import __version__
from pleno.api.docs import install_docs
from pleno.api.errors import install_error_handlers
from pleno.api.router import install_routes
from pleno.chaos import FaultInjector
from pleno.db import migration
from pleno.db.engine import create_engine, create_sessionmaker
from pleno.middleware.body_limit import BodyLimitMiddleware
from pleno.observability.metrics import Metrics
from pleno.observability.middleware import TelemetryMiddleware
from pleno.readiness import Readiness
from pleno.settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Pleno",
        version=__version__,
        lifespan=_lifespan,
        docs_url=None,  # replaced by offline pages below
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # FastAPI's own OpenTelemetry layer: off, TelemetryMiddleware makes the one server span.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.settings = settings
    app.state.readiness = Readiness()
    app.state.fault_injector = FaultInjector(
        settings.chaos_error_rate, settings.chaos_latency_ms, settings.chaos_seed
    )
    app.state.metrics = None
    if settings.metrics_enabled:
        app.state.metrics = Metrics(__version__, settings.build_commit)
        app.state.metrics.watch_fault_injector(app.state.fault_injector)
    app.state.tracing = None
    install_routes(app)
    if settings.docs_enabled:
        install_docs(app, "Pleno")
    install_error_handlers(app)
    # Added innermost first: telemetry wraps everything.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(
        TelemetryMiddleware,
        state=app.state,
        metrics=app.state.metrics,
        access_log=settings.access_log_enabled,
        probe_log_level=logging.getLevelName(settings.probe_log_level.upper()),
    )
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.started_monotonic = time.monotonic()
    engine = create_engine(settings)
    if settings.migrate_on_start:
        await migration.upgrade(engine)
    tracing = None
    if settings.otlp_traces_endpoint is not None:
        # Imported only when on: the SDK and exporter cost start time and memory for nothing.
        from pleno.observability.tracing import Tracing  # noqa: PLC0415

        tracing = Tracing(settings, __version__)
        tracing.instrument_engine(engine)
    if app.state.metrics is not None:
        app.state.metrics.watch_database_pool(engine)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.work_limiter = anyio.CapacityLimiter(settings.work_concurrency)
    async with httpx.AsyncClient(timeout=settings.downstream_timeout) as client:
        if tracing is not None:
            tracing.instrument_client(client)
        app.state.http_client = client
        app.state.tracing = tracing
        try:
            yield
        finally:
            # Runs after the server has drained in-flight requests: flush spans, close pools.
            app.state.tracing = None
            if tracing is not None:
                await anyio.to_thread.run_sync(tracing.shutdown)
                logger.info("spans flushed")
            await engine.dispose()
            logger.info("database pool closed")
