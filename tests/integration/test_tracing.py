"""Distributed tracing across real `pleno serve` processes, checked by a real OTLP receiver.

Two processes, frontend -> backend, export over OTLP/HTTP to the in-test receiver on loopback.
The tests assert what a trace backend would show: one trace across both services, correct
parent/child links down to the database, resources that name each service, and access log lines
that carry the same trace and span ids. They also check that tracing is off without an endpoint,
and that the samplers named by OTEL_TRACES_SAMPLER decide what is exported.

Export order is what makes the negative checks sound: the SDK's batch processor exports spans in
the order they ended, so once a later span has arrived, any span that ended before it in the same
process has arrived too.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pleno import __version__
from tests.integration.conftest import ServerProcess, free_port
from tests.support.otlp_receiver import OtlpReceiver, Span

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
CHAIN = "/api/v1/chain"
ITEMS = "/api/v1/items"
UNTRACED_PATHS = ("/health", "/ready", "/metrics")
# Generous: export is asynchronous, and a loaded CI machine may be slow to flush.
EXPORT_TIMEOUT = 15.0
# How long a negative check waits for spans that must not come: many export intervals
# (OTEL_BSP_SCHEDULE_DELAY below), since an exporter that is on would have sent by then.
QUIET_PERIOD = 2.0


def _telemetry_env(sampler: str, **extra: str) -> dict[str, str]:
    return {
        "OTEL_TRACES_SAMPLER": sampler,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # ms, below the 500 ms default: the tests wait less
        "PLENO_LOG_FORMAT": "json",
        **extra,
    }


def _traced_env(
    receiver: OtlpReceiver, sampler: str = "parentbased_always_on", **extra: str
) -> dict[str, str]:
    return _telemetry_env(sampler, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, **extra)


def _traceparent(trace_id: str, parent_id: str, *, sampled: bool) -> str:
    return f"00-{trace_id}-{parent_id}-{'01' if sampled else '00'}"


def _field(record: dict[str, Any], key: str) -> Any:
    """An ECS field, written either flat ("log.logger") or nested ({"log": {"logger": ...}})."""
    if key in record:
        return record[key]
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _access_lines(server: ServerProcess, path: str) -> list[dict[str, Any]]:
    lines = []
    for line in server.log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(record, dict)
            and _field(record, "log.logger") == "pleno.access"
            and _field(record, "url.path") == path
        ):
            lines.append(record)
    return lines


def _wait_for_access_line(server: ServerProcess, path: str, request_id: str) -> dict[str, Any]:
    # The access line is written once the response has been sent, so it may trail the answer.
    deadline = time.monotonic() + 5
    while not (
        lines := [
            line
            for line in _access_lines(server, path)
            if _field(line, "http.request.id") == request_id
        ]
    ):
        if time.monotonic() > deadline:
            raise AssertionError(f"no JSON access line for {path} [{request_id}]:\n{server.log}")
        time.sleep(0.02)
    (line,) = lines
    return line


def _server_spans(spans: list[Span], service: str, path: str) -> list[Span]:
    return [
        span
        for span in spans
        if span.service_name == service
        and span.kind == "SERVER"
        and span.attributes.get("url.path") == path
    ]


def _is_db_span(span: Span) -> bool:
    return "db.system" in span.attributes or "db.system.name" in span.attributes


def _ancestors(span: Span, by_id: dict[str, Span]) -> list[str]:
    chain: list[str] = []
    parent = span.parent_span_id
    while parent is not None and parent in by_id and parent not in chain:
        chain.append(parent)
        parent = by_id[parent].parent_span_id
    return chain


def _assert_server_span(span: Span, route: str, status: int = 200) -> None:
    assert span.name == f"GET {route}"
    assert span.attributes["http.request.method"] == "GET"
    assert span.attributes["http.route"] == route
    assert span.attributes["url.path"] == route
    status_attribute = span.attributes["http.response.status_code"]
    assert isinstance(status_attribute, int)
    assert not isinstance(status_attribute, bool)
    assert status_attribute == status
    assert span.status_code != "ERROR"


def _assert_resource(span: Span, service: str, pod: str, namespace: str) -> None:
    assert span.resource["service.name"] == service, span
    assert span.resource["service.version"] == __version__, span
    assert span.resource["k8s.pod.name"] == pod, span
    assert span.resource["service.instance.id"] == pod, span
    assert span.resource["k8s.namespace.name"] == namespace, span
    assert span.resource["k8s.node.name"] == "node-a", span


def _assert_access_line(line: dict[str, Any], span: Span, route: str, request_id: str) -> None:
    assert _field(line, "trace.id") == span.trace_id, line
    assert _field(line, "span.id") == span.span_id, line
    assert _field(line, "http.request.id") == request_id, line
    assert _field(line, "http.request.method") == "GET", line
    assert _field(line, "http.route") == route, line
    assert _field(line, "http.response.status_code") == 200, line
    assert str(_field(line, "log.level")).lower() == "info", line
    assert _field(line, "message"), line


@pytest.mark.parametrize("backend_database", ["sqlite", "postgresql"])
def test_one_trace_spans_frontend_backend_and_database(
    start_server: StartServer,
    receiver: OtlpReceiver,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend_database: str,
) -> None:
    if backend_database == "postgresql":
        database_url: str = request.getfixturevalue("postgres_database")
        db_system = "postgresql"
    else:
        database_url = f"sqlite:///{tmp_path}/backend.db"
        db_system = "sqlite"
    backend = start_server(
        PLENO_SERVICE_NAME="backend",
        PLENO_POD_NAME="backend-0",
        PLENO_POD_NAMESPACE="pleno-it",
        PLENO_NODE_NAME="node-a",
        PLENO_DATABASE_URL=database_url,
        PLENO_MIGRATE_ON_START="true",
        **_traced_env(receiver),
    )
    frontend = start_server(
        PLENO_SERVICE_NAME="frontend",
        PLENO_POD_NAME="frontend-0",
        PLENO_POD_NAMESPACE="pleno-it",
        PLENO_NODE_NAME="node-a",
        PLENO_DATABASE_URL=f"sqlite:///{tmp_path}/frontend.db",
        PLENO_DOWNSTREAM_URLS=backend.url + ITEMS,
        **_traced_env(receiver),
    )
    backend.wait_ready()
    frontend.wait_ready()

    # Probes and /metrics: answered, but no span at all, not even a database span for the
    # readiness check's query. Startup work (migrations) ran before this window.
    probes_started = time.time_ns()
    with httpx.Client(timeout=5) as client:
        for server in (frontend, backend):
            for path in UNTRACED_PATHS:
                for _ in range(3):
                    assert client.get(server.url + path).status_code == 200
    probes_ended = time.time_ns()

    request_id = f"trace-it-{secrets.token_hex(6)}"
    chain_started = time.time_ns()
    response = httpx.get(frontend.url + CHAIN, headers={"X-Request-ID": request_id}, timeout=10)
    chain_ended = time.time_ns()
    assert response.status_code == 200, response.text
    (downstream,) = response.json()["downstreams"]
    assert downstream["status"] == 200, downstream

    # Each process exports its SERVER span last (it ends after its children), so once both have
    # arrived the whole trace has, and so has every span either process ended before it.
    def chain_exported(spans: list[Span]) -> bool:
        roots = _server_spans(spans, "frontend", CHAIN)
        return bool(roots) and any(
            span.trace_id == roots[0].trace_id for span in _server_spans(spans, "backend", ITEMS)
        )

    spans = receiver.wait_for(chain_exported, EXPORT_TIMEOUT)
    assert receiver.errors == []

    # Exactly one trace for the chain request, and it spans both services.
    (fe_server,) = _server_spans(spans, "frontend", CHAIN)
    trace_id = fe_server.trace_id
    trace = [span for span in spans if span.trace_id == trace_id]
    listing = "\n".join(map(str, trace))
    assert {span.service_name for span in trace} == {"frontend", "backend"}, listing
    during_chain = [s for s in spans if chain_started <= s.start_time_unix_nano <= chain_ended]
    assert {span.trace_id for span in during_chain} == {trace_id}, listing
    for span in trace:
        assert chain_started <= span.start_time_unix_nano <= chain_ended, span
        if span.service_name == "frontend":
            _assert_resource(span, "frontend", "frontend-0", "pleno-it")
        else:
            _assert_resource(span, "backend", "backend-0", "pleno-it")

    # One connected tree: a single root, every other span's parent is in the trace.
    by_id = {span.span_id: span for span in trace}
    assert len(by_id) == len(trace), listing
    assert [span for span in trace if span.parent_span_id is None] == [fe_server], listing
    assert all(s.parent_span_id in by_id for s in trace if s is not fe_server), listing

    # frontend SERVER -> frontend CLIENT (httpx) -> backend SERVER -> backend database spans.
    _assert_server_span(fe_server, CHAIN)
    (fe_client,) = [s for s in trace if s.service_name == "frontend" and s.kind == "CLIENT"]
    assert fe_client.parent_span_id == fe_server.span_id, listing
    client_url = fe_client.attributes.get("url.full", fe_client.attributes.get("http.url"))
    assert client_url == backend.url + ITEMS, fe_client.attributes
    client_status = fe_client.attributes.get(
        "http.response.status_code", fe_client.attributes.get("http.status_code")
    )
    assert client_status == 200, fe_client.attributes
    assert fe_client.name.startswith("GET"), fe_client

    (be_server,) = [s for s in trace if s.service_name == "backend" and s.kind == "SERVER"]
    assert be_server.parent_span_id == fe_client.span_id, listing
    _assert_server_span(be_server, ITEMS)

    db_spans = [span for span in trace if _is_db_span(span)]
    assert db_spans, f"no database span in the trace:\n{listing}"
    assert any("SELECT" in span.name for span in db_spans), listing
    for span in db_spans:
        assert span.service_name == "backend", span
        assert span.kind == "CLIENT", span
        assert span.attributes.get("db.system", span.attributes.get("db.system.name")) == (
            db_system
        ), span
        assert be_server.span_id in _ancestors(span, by_id), listing
    # The frontend's chain handler touches no database: its spans are the request's alone.
    assert not [s for s in trace if s.service_name == "frontend" and _is_db_span(s)], listing

    # Nothing was traced for the probes or /metrics.
    assert not [
        span
        for span in spans
        if span.attributes.get("url.path") in UNTRACED_PATHS
        or span.attributes.get("http.route") in UNTRACED_PATHS
    ]
    during_probes = [s for s in spans if probes_started <= s.start_time_unix_nano <= probes_ended]
    assert during_probes == [], "\n".join(map(str, during_probes))

    # Each service's access line carries the ids of its own SERVER span.
    fe_line = _wait_for_access_line(frontend, CHAIN, request_id)
    _assert_access_line(fe_line, fe_server, CHAIN, request_id)
    be_line = _wait_for_access_line(backend, ITEMS, request_id)
    _assert_access_line(be_line, be_server, ITEMS, request_id)


def test_tracing_is_off_without_an_endpoint(
    start_server: StartServer, receiver: OtlpReceiver
) -> None:
    # Everything that would turn tracing on, except the endpoint. The server is its own
    # downstream, so a chain call still goes through the HTTP client and the database.
    port = free_port()
    server = start_server(
        PLENO_PORT=str(port),
        PLENO_DOWNSTREAM_URLS=f"http://127.0.0.1:{port}{ITEMS}",
        **_telemetry_env("always_on"),
    )
    server.wait_ready()

    incoming = _traceparent(secrets.token_hex(16), secrets.token_hex(8), sampled=True)
    with httpx.Client(timeout=10) as client:
        for headers in ({}, {"traceparent": incoming}):
            response = client.get(server.url + CHAIN, headers=headers)
            assert response.status_code == 200, response.text
            assert response.json()["downstreams"][0]["status"] == 200
    # JSON access logging works without tracing too, and no line carries a trace id: not the
    # caller's (nothing reads it) and not one of ours (no span is made, none is propagated).
    _wait_for_access_line(server, CHAIN, response.headers["x-request-id"])
    # A downstream's line may trail its caller's: the item request closes its database session
    # after answering, and only then logs.
    deadline = time.monotonic() + 5
    while len(access := _access_lines(server, CHAIN) + _access_lines(server, ITEMS)) < 4:
        assert time.monotonic() < deadline, server.log
        time.sleep(0.02)
    assert [(_field(line, "trace.id"), _field(line, "span.id")) for line in access] == [
        (None, None)
    ] * 4

    time.sleep(QUIET_PERIOD)
    assert receiver.export_requests == 0
    assert receiver.spans == []
    assert receiver.errors == []


@pytest.mark.parametrize("sampler", ["always_off", "traceidratio"])
def test_a_sampler_that_samples_nothing_exports_nothing(
    start_server: StartServer, receiver: OtlpReceiver, sampler: str
) -> None:
    server = start_server(**_traced_env(receiver, sampler, OTEL_TRACES_SAMPLER_ARG="0"))
    server.wait_ready()

    # Neither sampler consults the parent: even a sampled incoming traceparent is dropped.
    incoming = _traceparent(secrets.token_hex(16), secrets.token_hex(8), sampled=True)
    with httpx.Client(timeout=5) as client:
        for number in range(20):
            headers = {"traceparent": incoming} if number % 2 else {}
            assert client.get(server.url + ITEMS, headers=headers).status_code == 200

    time.sleep(QUIET_PERIOD)
    assert receiver.spans == []
    assert receiver.errors == []


@pytest.mark.parametrize("endpoint_variable", ["base", "traces"])
def test_parent_based_sampling_follows_the_incoming_sampled_flag(
    start_server: StartServer, receiver: OtlpReceiver, endpoint_variable: str
) -> None:
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as-is; the base one gets /v1/traces appended.
    endpoint = (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        if endpoint_variable == "base"
        else {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.traces_url}
    )
    server = start_server(
        **_telemetry_env(
            "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0", PLENO_SERVICE_NAME="sampled"
        ),
        **endpoint,
    )
    server.wait_ready()

    # Roots are sampled at ratio 0, and an unsampled parent is followed: none is exported.
    unsampled = _traceparent(secrets.token_hex(16), secrets.token_hex(8), sampled=False)
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    request_id = f"sampled-{secrets.token_hex(6)}"
    with httpx.Client(timeout=5) as client:
        for _ in range(20):
            assert client.get(server.url + ITEMS).status_code == 200
        response = client.get(server.url + ITEMS, headers={"traceparent": unsampled})
        assert response.status_code == 200
        # A sampled parent is followed: exported, continuing the caller's trace.
        headers = {
            "traceparent": _traceparent(trace_id, parent_id, sampled=True),
            "X-Request-ID": request_id,
        }
        assert client.get(server.url + ITEMS, headers=headers).status_code == 200

    spans = receiver.wait_for(
        lambda spans: bool(_server_spans(spans, "sampled", ITEMS)), EXPORT_TIMEOUT
    )
    assert receiver.errors == []
    listing = "\n".join(map(str, spans))
    # Everything exported belongs to the sampled request: the 21 others ended earlier in the
    # same process, so they would have been exported by now had they been sampled.
    assert {span.trace_id for span in spans} == {trace_id}, listing
    (server_span,) = _server_spans(spans, "sampled", ITEMS)
    assert server_span.parent_span_id == parent_id
    _assert_server_span(server_span, ITEMS)
    by_id = {span.span_id: span for span in spans}
    db_spans = [span for span in spans if _is_db_span(span)]
    assert db_spans, listing
    assert all(server_span.span_id in _ancestors(span, by_id) for span in db_spans), listing

    line = _wait_for_access_line(server, ITEMS, request_id)
    assert _field(line, "trace.id") == trace_id
    assert _field(line, "span.id") == server_span.span_id
