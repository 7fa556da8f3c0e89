"""OpenTelemetry tracing: one SERVER span per request (made by our middleware), plus the
SQLAlchemy and httpx instrumentations for database spans and W3C propagation downstream.

Off unless an OTLP endpoint is configured. The provider is local to the app, never the global
one: FastAPI's built-in telemetry switches itself on when a global SDK provider exists, and
would trace every request a second time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import httpx
from opentelemetry import metrics, propagate
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span, SpanKind
from sqlalchemy.ext.asyncio import AsyncEngine

from pleno.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

EXPORT_TIMEOUT_S = 5


def build_sampler(name: str, ratio: float) -> Sampler:
    """The sampler named by OTEL_TRACES_SAMPLER, with OTEL_TRACES_SAMPLER_ARG as its ratio."""
    samplers: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(TraceIdRatioBased(ratio)),
    }
    return samplers[name]


class Tracing:
    def __init__(self, settings: Settings, service_version: str) -> None:
        endpoint = settings.otlp_traces_endpoint
        if endpoint is None:
            raise ValueError("tracing needs OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT")
        attributes = {
            "service.name": settings.service_name,
            "service.version": service_version,
            # Tells replicas apart (the Collector's prometheus exporter makes `instance` of it).
            "service.instance.id": settings.pod_name or uuid.uuid4().hex,
        }
        if settings.pod_name:
            attributes["k8s.pod.name"] = settings.pod_name
        if settings.pod_namespace:
            attributes["k8s.namespace.name"] = settings.pod_namespace
        if settings.node_name:
            attributes["k8s.node.name"] = settings.node_name
        self.provider = TracerProvider(
            resource=Resource(attributes),
            sampler=build_sampler(settings.otel_traces_sampler, settings.otel_traces_sampler_arg),
        )
        self.provider.add_span_processor(
            # Small, frequent batches by default (Settings says why): the exporter encodes spans
            # in Python on its own thread, holding the GIL while it does.
            BatchSpanProcessor(
                _DeferredOtlpExporter(endpoint),
                max_queue_size=settings.otel_bsp_max_queue_size,
                schedule_delay_millis=settings.otel_bsp_schedule_delay,
                max_export_batch_size=settings.otel_bsp_max_export_batch_size,
            )
        )
        self.tracer = self.provider.get_tracer("pleno", service_version)

    def start_server_span(self, method: str, path: str, headers: Mapping[str, str]) -> Span:
        """Start the request's SERVER span, continuing the caller's W3C trace if any."""
        parent = propagate.extract(headers) if "traceparent" in headers else None
        return self.tracer.start_span(
            method,  # renamed to "METHOD /route/template" once routing is done
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
            record_exception=False,  # the middleware records it, with the request id
            set_status_on_exception=False,
        )

    def instrument_engine(self, engine: AsyncEngine) -> None:
        # EngineTracer instruments this engine only; SQLAlchemyInstrumentor().instrument() would
        # patch sqlalchemy.create_engine process-wide, and only once per process.
        usage = metrics.NoOpMeter("pleno").create_up_down_counter("db.client.connections.usage")
        EngineTracer(self.tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]

    def instrument_client(self, client: httpx.AsyncClient) -> None:
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.provider)

    def shutdown(self) -> None:
        """Flush what is buffered and stop exporting; called after the drain."""
        self.provider.shutdown()


class _DeferredOtlpExporter(SpanExporter):
    """The OTLP/HTTP exporter, imported by the export thread on its first batch.

    Importing it (protobuf, the generated OTLP messages, requests) takes about a tenth of a
    second; done here, it is off the start-to-ready path, and a process that never exports
    never pays it.
    """

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._exporter: SpanExporter | None = None
        self._lock = threading.Lock()

    def _get(self) -> SpanExporter:
        with self._lock:
            if self._exporter is None:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                    OTLPSpanExporter,
                )

                self._exporter = OTLPSpanExporter(endpoint=self._endpoint, timeout=EXPORT_TIMEOUT_S)
            return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._get().export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter is None or self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        if self._exporter is not None:
            self._exporter.shutdown()
