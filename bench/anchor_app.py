"""The anchor: the same app with the off-the-shelf telemetry stack, glued the usual way.

- Metrics: prometheus-fastapi-instrumentator with its default metrics, exposed on /metrics.
- Logs: uvicorn's own access log, one line per request, rendered as JSON by python-json-logger.
- Traces: opentelemetry-instrumentation-fastapi with an SDK TracerProvider, installed globally
  as the OTel docs show, exporting OTLP/HTTP through a BatchSpanProcessor. The sampler and
  endpoint come from the same standard variables the harness sets for Pleno
  (OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1,
  OTEL_EXPORTER_OTLP_ENDPOINT), so both trace under identical settings.

FastAPI's built-in telemetry is switched off explicitly. Recent FastAPI releases switch their
own OpenTelemetry tracing on as soon as a global SDK tracer provider exists, so without
``telemetry={...: False}`` every request would be instrumented twice and the anchor would look
worse than the off-the-shelf stack really is.

Run: ``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python -m bench.anchor_app --port 8002``
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_fastapi_instrumentator import Instrumentator

from bench.bare_app import add_endpoints
from bench.serve import run

# Probes and the scrape endpoint are neither counted nor traced, as in Pleno.
_UNOBSERVED = ("/ready", "/metrics")

# uvicorn's access logger, through python-json-logger, to stdout (what a log shipper reads).
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}


def create_app() -> FastAPI:
    # TracerProvider() reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_SERVICE_NAME; the exporter reads
    # OTEL_EXPORTER_OTLP_ENDPOINT and appends /v1/traces.
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        provider.shutdown()  # flush queued spans, so the sink sees every sampled request

    app = FastAPI(lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})

    add_endpoints(app)

    Instrumentator(excluded_handlers=list(_UNOBSERVED)).instrument(app).expose(app)
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls=",".join(_UNOBSERVED)
    )
    return app


if __name__ == "__main__":
    run(create_app(), access_log=True, log_config=LOG_CONFIG)
