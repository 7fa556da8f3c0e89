"""A small, real OTLP/HTTP trace receiver on loopback, for tests and the benchmark.

It speaks the OTLP/HTTP binary protocol as specified in
https://opentelemetry.io/docs/specs/otlp/#otlphttp: `POST /v1/traces` with an
`application/x-protobuf` body (optionally gzip-compressed) holding an `ExportTraceServiceRequest`,
answered with 200 and an `ExportTraceServiceResponse`. Anything else gets a 4xx, and is recorded in
`errors`, so a test can tell "nothing was sent" from "something was sent that we could not read".

    with OtlpReceiver() as receiver:
        ...  # point an exporter at receiver.endpoint (or receiver.traces_url)
        spans = receiver.wait_for(lambda spans: any(s.kind == "SERVER" for s in spans))
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TypeAlias

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"

# An OTLP AnyValue as a Python value; kvlist becomes a dict, array a list, empty None.
AttributeValue: TypeAlias = (
    str | bool | int | float | bytes | list["AttributeValue"] | dict[str, "AttributeValue"] | None
)
Attributes: TypeAlias = dict[str, AttributeValue]


@dataclass(frozen=True)
class Span:
    """One received span, with its resource, in plain Python values."""

    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_span_id: str | None  # 16 hex digits, or None for a root span
    name: str
    kind: str  # "SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER" or "UNSPECIFIED"
    attributes: Attributes
    resource: Attributes
    status_code: str  # "UNSET", "OK" or "ERROR"
    status_message: str
    scope: str  # instrumentation scope name, e.g. "opentelemetry.instrumentation.httpx"
    start_time_unix_nano: int
    end_time_unix_nano: int

    @property
    def service_name(self) -> str | None:
        name = self.resource.get("service.name")
        return name if isinstance(name, str) else None

    def __str__(self) -> str:
        parent = self.parent_span_id or "root"
        return (
            f"{self.service_name}:{self.kind} {self.name!r} "
            f"trace={self.trace_id} span={self.span_id} parent={parent}"
        )


def decode_value(value: AnyValue) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [decode_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    decoded: AttributeValue = getattr(value, kind)
    return decoded


def decode_attributes(pairs: Iterable[KeyValue]) -> Attributes:
    return {pair.key: decode_value(pair.value) for pair in pairs}


def _enum_suffix(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def decode_request(request: ExportTraceServiceRequest) -> list[Span]:
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = decode_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=_enum_suffix(ProtoSpan.SpanKind.Name(span.kind), "SPAN_KIND_"),
                        attributes=decode_attributes(span.attributes),
                        resource=dict(resource),
                        status_code=_enum_suffix(
                            Status.StatusCode.Name(span.status.code), "STATUS_CODE_"
                        ),
                        status_message=span.status.message,
                        scope=scope_spans.scope.name,
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano,
                    )
                )
    return spans


class _RefusedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps the exporter's connection alive, as a real collector does.
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        try:
            request = self._parse()
        except _RefusedError as error:
            self.server.receiver._record_error(f"{error.status} {error.message}")
            self._answer(error.status, "text/plain", error.message.encode())
            return
        self.server.receiver._record(decode_request(request))
        self._answer(200, PROTOBUF, ExportTraceServiceResponse().SerializeToString())

    def _parse(self) -> ExportTraceServiceRequest:
        body = self._read_body()  # read it all, even to refuse it, so keep-alive stays in sync
        if self.path.partition("?")[0] != TRACES_PATH:
            raise _RefusedError(404, f"unknown path {self.path}")
        content_type = self.headers.get("Content-Type", "").partition(";")[0].strip()
        if content_type.lower() != PROTOBUF:
            raise _RefusedError(415, f"unsupported Content-Type {content_type!r}")
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(self._decompress(body))
        except DecodeError as error:
            raise _RefusedError(400, f"undecodable ExportTraceServiceRequest: {error}") from error
        return request

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    def _decompress(self, body: bytes) -> bytes:
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            if encoding == "gzip":
                return gzip.decompress(body)
            if encoding == "deflate":
                return zlib.decompress(body)
        except (OSError, EOFError, zlib.error) as error:
            raise _RefusedError(400, f"bad {encoding} body: {error}") from error
        if encoding in ("", "identity"):
            return body
        raise _RefusedError(415, f"unsupported Content-Encoding {encoding!r}")

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean; failures are recorded in `errors`


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: OtlpReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1 and a free port; use it as a context manager."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._spans: list[Span] = []
        self._errors: list[str] = []
        self._export_requests = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OtlpReceiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the receiver is already running")
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="otlp-receiver",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not running")
        port: int = self._server.server_address[1]
        return port

    @property
    def endpoint(self) -> str:
        """The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT wants it (exporters append /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def traces_url(self) -> str:
        """The full URL, as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTLPSpanExporter want it."""
        return self.endpoint + TRACES_PATH

    @property
    def spans(self) -> list[Span]:
        """A snapshot of every span received so far, in arrival order."""
        with self._condition:
            return list(self._spans)

    @property
    def errors(self) -> list[str]:
        """Requests that were refused, as "<status> <reason>"."""
        with self._condition:
            return list(self._errors)

    @property
    def export_requests(self) -> int:
        """Export requests accepted, including empty ones."""
        with self._condition:
            return self._export_requests

    def clear(self) -> None:
        with self._condition:
            self._spans.clear()
            self._errors.clear()
            self._export_requests = 0

    def wait_for(
        self, predicate: Callable[[list[Span]], bool], timeout: float = 15.0
    ) -> list[Span]:
        """Wait until `predicate(spans)` holds for all spans received so far; return them.

        Raises AssertionError after `timeout` seconds, listing what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                snapshot = list(self._spans)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
        listing = "\n".join(f"  {span}" for span in snapshot) or "  (none)"
        errors = "".join(f"\n  refused: {error}" for error in self.errors)
        raise AssertionError(
            f"spans not received after {timeout}s; received {len(snapshot)}:\n{listing}{errors}"
        )

    def _record(self, spans: list[Span]) -> None:
        with self._condition:
            self._spans.extend(spans)
            self._export_requests += 1
            self._condition.notify_all()

    def _record_error(self, error: str) -> None:
        with self._condition:
            self._errors.append(error)
            self._condition.notify_all()
