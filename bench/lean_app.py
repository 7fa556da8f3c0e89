"""The issue's reference design, rebuilt so every run measures it beside Pleno.

Issue 3 quotes a reference point for "one lean pure-ASGI middleware": prometheus_client
histogram and counter by route template, an orjson line to fd 1, and one OpenTelemetry server
span at 10% sampling. This is that design and nothing more, written as lean as it goes: label
children cached, no request id, no extra headers, no probe split, no in-flight gauge, no
unsampled trace ids in the line. It tells which part of the distance to the budgets is Pleno's
own extra work and which part the design itself costs on this machine. It also keeps Python's
collector as it is (Pleno calls ``gc.freeze()`` after start-up), which shows in its p99.

The tracer provider is local, not global, so FastAPI's built-in tracing stays dormant; it reads
OTEL_TRACES_SAMPLER(_ARG) like Pleno's, and exports OTLP/HTTP through a BatchSpanProcessor with
the same batch settings as Pleno (pleno.settings, OTEL_BSP_*).

Run: ``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python -m bench.lean_app --port 8003``
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bench.bare_app import add_endpoints
from bench.serve import run
from pleno.observability.metrics import DURATION_BUCKETS
from pleno.settings import Settings

_UNOBSERVED = frozenset({"/ready"})  # the probe, as in Pleno (this app has no /metrics route)


class LeanTelemetry:
    def __init__(self, app: ASGIApp, tracer: trace.Tracer, registry: CollectorRegistry) -> None:
        self.app = app
        self.tracer = tracer
        labels = ("method", "route", "status")
        self.requests = Counter("http_requests", "Requests.", labels, registry=registry)
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Duration.",
            labels,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _UNOBSERVED:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        span = self.tracer.start_span(scope["method"], kind=SpanKind.SERVER)
        token = otel_context.attach(trace.set_span_in_context(span))
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            duration_ns = time.perf_counter_ns() - started
            route = getattr(scope.get("route"), "path", "<unmatched>")
            method = scope["method"]
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            span.end()
            otel_context.detach(token)
            key = (method, route, status)
            children = self.children.get(key)
            if children is None:
                labels = (method, route, str(status))
                children = self.children[key] = (
                    self.requests.labels(*labels),
                    self.duration.labels(*labels),
                )
            children[0].inc()
            children[1].observe(duration_ns / 1e9)
            context = span.get_span_context()
            line = {
                "@timestamp": time.time(),
                "log.level": "info",
                "http.request.method": method,
                "url.path": scope["path"],
                "http.route": route,
                "http.response.status_code": status,
                "event.duration": duration_ns,
                "latency_ms": duration_ns // 1_000_000,
            }
            if context.trace_flags.sampled:
                line["trace.id"] = format(context.trace_id, "032x")
            os.write(1, orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))


def create_app() -> FastAPI:
    provider = TracerProvider()  # sampler from OTEL_TRACES_SAMPLER(_ARG)
    batching = Settings()  # Pleno's OTEL_BSP_* defaults, or the same variables when set
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(),  # endpoint from OTEL_EXPORTER_OTLP_ENDPOINT
            max_queue_size=batching.otel_bsp_max_queue_size,
            schedule_delay_millis=batching.otel_bsp_schedule_delay,
            max_export_batch_size=batching.otel_bsp_max_export_batch_size,
        )
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        provider.shutdown()  # flush queued spans, so the sink sees every sampled request

    app = FastAPI(lifespan=lifespan)

    add_endpoints(app)

    app.add_middleware(
        LeanTelemetry, tracer=provider.get_tracer("lean"), registry=CollectorRegistry()
    )
    return app


if __name__ == "__main__":
    run(create_app())
