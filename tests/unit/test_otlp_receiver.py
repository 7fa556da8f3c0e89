"""The in-test OTLP receiver decodes what the real OpenTelemetry SDK exporter sends.

The tracing tests trust this receiver to report what a service exported, so it is checked here
against the real OTLP/HTTP exporter, with each compression it may use, and against bad requests.
"""

from __future__ import annotations

import gzip
import time

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from tests.support.otlp_receiver import OtlpReceiver, Span

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _provider(receiver: OtlpReceiver, compression: Compression, *, batch: bool) -> TracerProvider:
    # A private provider, never the global one, so nothing leaks into other tests.
    resource = Resource.create(
        {"service.name": "receiver-test", "service.version": "1.2.3", "k8s.pod.name": "pod-0"}
    )
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=receiver.traces_url, compression=compression, timeout=5)
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


@pytest.mark.parametrize(
    ("compression", "batch"),
    [
        (Compression.NoCompression, False),
        (Compression.Gzip, False),
        (Compression.Deflate, False),
        (Compression.Gzip, True),
    ],
)
def test_decodes_parent_and_child_spans_from_the_sdk_exporter(
    receiver: OtlpReceiver, compression: Compression, *, batch: bool
) -> None:
    provider = _provider(receiver, compression, batch=batch)
    tracer = provider.get_tracer("receiver.test.scope")
    before = time.time_ns()
    with tracer.start_as_current_span(
        "GET /api/v1/chain",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.response.status_code": 200},
    ) as parent:
        with tracer.start_as_current_span(
            "SELECT items",
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "sqlite",
                "ratio": 0.5,
                "cached": False,
                "tags": ["a", "b"],
                "sizes": [1, 2, 3],
            },
        ) as child:
            child.set_status(StatusCode.ERROR, "boom")
        with tracer.start_as_current_span("work"):
            pass
    assert provider.force_flush(5_000)
    provider.shutdown()

    spans = receiver.wait_for(lambda spans: len(spans) == 3, timeout=5)
    assert receiver.errors == []
    by_name = {span.name: span for span in spans}
    server, db, internal = by_name["GET /api/v1/chain"], by_name["SELECT items"], by_name["work"]

    parent_context, child_context = parent.get_span_context(), child.get_span_context()
    assert server.trace_id == format_trace_id(parent_context.trace_id)
    assert server.span_id == format_span_id(parent_context.span_id)
    assert len(server.trace_id) == 32
    assert len(server.span_id) == 16
    assert server.parent_span_id is None
    assert db.trace_id == internal.trace_id == server.trace_id
    assert db.span_id == format_span_id(child_context.span_id)
    assert db.parent_span_id == internal.parent_span_id == server.span_id

    assert (server.kind, db.kind, internal.kind) == ("SERVER", "CLIENT", "INTERNAL")
    assert server.attributes == {"http.request.method": "GET", "http.response.status_code": 200}
    assert db.attributes == {
        "db.system": "sqlite",
        "ratio": 0.5,
        "cached": False,
        "tags": ["a", "b"],
        "sizes": [1, 2, 3],
    }
    assert (server.status_code, db.status_code, db.status_message) == ("UNSET", "ERROR", "boom")
    assert {span.scope for span in spans} == {"receiver.test.scope"}
    assert all(before <= s.start_time_unix_nano <= s.end_time_unix_nano for s in spans)

    for span in spans:
        assert span.service_name == "receiver-test"
        assert span.resource["service.version"] == "1.2.3"
        assert span.resource["k8s.pod.name"] == "pod-0"
        assert span.resource["telemetry.sdk.language"] == "python"


def test_wait_for_returns_as_soon_as_the_predicate_holds(receiver: OtlpReceiver) -> None:
    provider = _provider(receiver, Compression.NoCompression, batch=False)
    with provider.get_tracer("t").start_as_current_span("only"):
        pass
    spans = receiver.wait_for(lambda spans: any(s.name == "only" for s in spans), timeout=5)
    assert [span.name for span in spans] == ["only"]
    assert receiver.spans == spans
    assert receiver.export_requests == 1
    provider.shutdown()

    receiver.clear()
    assert receiver.spans == []
    assert receiver.export_requests == 0


def test_wait_for_times_out_with_a_listing(receiver: OtlpReceiver) -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"received 0:\n  \(none\)"):
        receiver.wait_for(bool, timeout=0.2)
    assert time.monotonic() - started < 2


def test_answers_an_empty_request_with_an_export_response(receiver: OtlpReceiver) -> None:
    response = httpx.post(receiver.traces_url, content=b"", headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(response.content)  # raises if not one
    assert receiver.export_requests == 1
    assert receiver.spans == []


def test_decodes_a_hand_built_gzip_request(receiver: OtlpReceiver) -> None:
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans()])
    scope_spans = request.resource_spans[0].scope_spans.add()
    span = scope_spans.spans.add(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), name="manual", kind=2
    )
    span.attributes.add(key="nothing")  # an empty AnyValue
    kv = span.attributes.add(key="nested").value.kvlist_value.values.add(key="inner")
    kv.value.bytes_value = b"\x00\x01"
    body = gzip.compress(request.SerializeToString())

    response = httpx.post(
        receiver.traces_url,
        content=body,
        headers={**PROTOBUF, "Content-Encoding": "gzip"},
    )

    assert response.status_code == 200
    (received,) = receiver.spans
    assert received == Span(
        trace_id="000102030405060708090a0b0c0d0e0f",
        span_id="0001020304050607",
        parent_span_id=None,
        name="manual",
        kind="SERVER",
        attributes={"nothing": None, "nested": {"inner": b"\x00\x01"}},
        resource={},
        status_code="UNSET",
        status_message="",
        scope="",
        start_time_unix_nano=0,
        end_time_unix_nano=0,
    )
    assert received.service_name is None


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/v1/metrics", PROTOBUF, b"", 404),
        ("/v1/traces", {"Content-Type": "application/json"}, b"{}", 415),
        ("/v1/traces", {**PROTOBUF, "Content-Encoding": "br"}, b"", 415),
        ("/v1/traces", {**PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip", 400),
        ("/v1/traces", PROTOBUF, b"\xff\xff\xff", 400),
    ],
)
def test_refuses_what_it_cannot_read(
    receiver: OtlpReceiver, path: str, headers: dict[str, str], body: bytes, status: int
) -> None:
    response = httpx.post(receiver.endpoint + path, content=body, headers=headers)
    assert response.status_code == status
    (error,) = receiver.errors
    assert error.startswith(f"{status} ")
    assert receiver.export_requests == 0
    assert receiver.spans == []


def test_stops_listening_on_exit() -> None:
    with OtlpReceiver() as receiver:
        url = receiver.traces_url
        assert httpx.post(url, content=b"", headers=PROTOBUF).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, content=b"", headers=PROTOBUF, timeout=1)
    with pytest.raises(RuntimeError, match="not running"):
        _ = receiver.endpoint
