"""Prometheus metrics: names, labels and buckets are a contract documented in docs/telemetry.md.

One uvicorn worker per process (scale with replicas), so a plain in-process registry is exact and
no multiprocess mode is needed. Each app gets its own registry: tests can build many apps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from pleno.chaos import FaultInjector

NAMESPACE = "pleno"
# Latency SLO thresholds are 0.1 s, 0.25 s and 0.5 s: each must be a bucket boundary, so that
# "share of requests under the threshold" is an exact bucket ratio, not an interpolation.
SLO_THRESHOLDS_SECONDS = (0.1, 0.25, 0.5)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Every path that matched no route shares this label value, so random URLs add no series.
UNMATCHED_ROUTE = "<unmatched>"
# Probes and the scrape itself are counted apart from API traffic, so they cannot skew SLOs.
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})


class Metrics:
    """Every metric of one app, on the app's own registry."""

    def __init__(self, version: str, commit: str) -> None:
        # `_created` series double the series count and no dashboard or rule here reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            namespace=NAMESPACE,
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from request start to the end of the response body, by route template.",
            ("method", "route", "status"),
            namespace=NAMESPACE,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being handled now (probes and /metrics excluded).",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.probe_requests = Counter(
            "probe_requests",
            "Requests to /health, /ready and /metrics, kept out of the API's RED metrics.",
            ("path", "status"),
            namespace=NAMESPACE,
            registry=registry,
        )
        self.ready = Gauge(
            "ready",
            "1 if the last readiness evaluation passed, else 0.",
            namespace=NAMESPACE,
            registry=registry,
        )
        build = Gauge(
            "build_info",
            "Always 1; the labels identify the running build.",
            ("version", "commit"),
            namespace=NAMESPACE,
            registry=registry,
        )
        build.labels(version=version, commit=commit).set(1)
        # Label children cached by key: skips prometheus_client's per-call lock and lookup.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._probe_children: dict[tuple[str, int], Any] = {}

    def observe_request(
        self, method: str, route: str, status: int, duration_s: float, trace_id: str | None
    ) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.duration.labels(*labels))
            self._request_children[key] = children
        counter, histogram = children
        counter.inc()
        # The exemplar links this bucket to the trace (shown in OpenMetrics output only).
        histogram.observe(duration_s, {"trace_id": trace_id} if trace_id else None)

    def observe_probe(self, path: str, status: int) -> None:
        key = (path, status)
        child = self._probe_children.get(key)
        if child is None:
            child = self._probe_children[key] = self.probe_requests.labels(path, str(status))
        child.inc()

    def watch_database_pool(self, engine: AsyncEngine) -> None:
        self.registry.register(_PoolCollector(engine))

    def watch_fault_injector(self, injector: FaultInjector) -> None:
        self.registry.register(_ChaosCollector(injector))


class _PoolCollector(Collector):
    """Reads the SQLAlchemy pool at scrape time: no bookkeeping on the request path."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._engine.sync_engine.pool
        connections = GaugeMetricFamily(
            f"{NAMESPACE}_db_pool_connections",
            "Database connections held by the pool, by state.",
            labels=("state",),
        )
        checked_out = getattr(pool, "checkedout", None)
        checked_in = getattr(pool, "checkedin", None)
        if callable(checked_out) and callable(checked_in):
            connections.add_metric(("in_use",), checked_out())
            connections.add_metric(("idle",), checked_in())
        yield connections
        overflow = getattr(pool, "overflow", None)
        size = getattr(pool, "size", None)
        yield _gauge(
            "db_pool_overflow",
            "Connections open beyond the pool size (negative: pool not yet full).",
            overflow() if callable(overflow) else 0,
        )
        yield _gauge("db_pool_size", "Configured pool size.", size() if callable(size) else 0)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


class _ChaosCollector(Collector):
    def __init__(self, injector: FaultInjector) -> None:
        self._injector = injector

    def collect(self) -> Iterator[CounterMetricFamily]:
        errors = CounterMetricFamily(
            f"{NAMESPACE}_chaos_injected_errors",
            "Responses replaced by an injected 500 or 503, by status.",
            labels=("status",),
        )
        for status, count in sorted(self._injector.injected_errors_by_status.items()):
            errors.add_metric((str(status),), count)
        yield errors
        yield CounterMetricFamily(
            f"{NAMESPACE}_chaos_injected_latency_seconds",
            "Total latency added by fault injection.",
            value=self._injector.injected_latency_s,
        )

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", documentation, value=value)
