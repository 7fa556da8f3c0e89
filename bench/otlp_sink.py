"""A minimal OTLP/HTTP receiver that accepts everything and counts spans.

It answers ``POST /v1/traces`` with 200 and an empty ExportTraceServiceResponse (protobuf), like
a collector that is keeping up, so exporting costs the service what it would in production
minus the network. Any other ``POST /v1/*`` (metrics, logs) gets the same empty 200.
``GET /stats`` returns running totals as JSON; the harness takes differences around each
server's lifetime to attribute spans to a variant.

Run (the harness pins it to the client core): ``python -m bench.otlp_sink --port 4318``
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_SPAN_KIND_SERVER = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
_EMPTY_RESPONSE = ExportTraceServiceResponse().SerializeToString()


class Totals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.exports = 0
        self.spans = 0
        self.server_spans = 0  # one per traced request: the sampled share of requests
        self.bytes = 0
        self.bad_requests = 0

    def add(self, *, size: int, spans: int, server_spans: int) -> None:
        with self._lock:
            self.exports += 1
            self.bytes += size
            self.spans += spans
            self.server_spans += server_spans

    def add_bad(self) -> None:
        with self._lock:
            self.bad_requests += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "exports": self.exports,
                "spans": self.spans,
                "server_spans": self.server_spans,
                "bytes": self.bytes,
                "bad_requests": self.bad_requests,
            }


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as the OTLP exporter's HTTP session expects from a collector.
    protocol_version = "HTTP/1.1"
    totals: ClassVar[Totals] = Totals()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.startswith("/v1/"):
            self._answer(404, b"", "text/plain")
            return
        if self.path == "/v1/traces":
            try:
                self._count(_decompress(body, self.headers.get("Content-Encoding", "")))
            except Exception:  # a malformed export must not kill the sink; it is counted
                self.totals.add_bad()
                self._answer(400, b"", "text/plain")
                return
        self._answer(200, _EMPTY_RESPONSE, "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path != "/stats":
            self._answer(404, b"", "text/plain")
            return
        self._answer(200, json.dumps(self.totals.snapshot()).encode(), "application/json")

    def _count(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = server_spans = 0
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans += len(scope_spans.spans)
                server_spans += sum(s.kind == _SPAN_KIND_SERVER for s in scope_spans.spans)
        self.totals.add(size=len(body), spans=spans, server_spans=server_spans)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: one line per export would only cost CPU on the client core."""


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
