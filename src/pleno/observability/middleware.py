"""The outermost middleware: request id, standard headers, the last-resort 500, and telemetry
(RED metrics by route template, the SERVER span, one access line per request).

One pure-ASGI layer does all of it. BaseHTTPMiddleware would cost a task per request, and
separate layers would each pay the wrapping again; the overhead budget is in docs/telemetry.md.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pleno.api.errors import problem
from pleno.context import current_request_id
from pleno.observability.logging import ACCESS_LOGGER, AccessLogRecord, AccessRecord
from pleno.observability.metrics import PROBE_PATHS, UNMATCHED_ROUTE

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from starlette.datastructures import State

    from pleno.observability.metrics import Metrics
    from pleno.observability.tracing import Tracing

# Client ids are echoed into headers and logs: accept only short, printable, unambiguous ones.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Anything else shares one label value, so a scanner's invented methods add no series.
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)

# The context key the OpenTelemetry instrumentations check before making a span.
_SUPPRESSED = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)

_NOSNIFF = (b"x-content-type-options", b"nosniff")
_CONNECTION_CLOSE = (b"connection", b"close")
_ids = random.Random()  # noqa: S311 - request ids correlate logs; they guard nothing

access_logger = logging.getLogger(ACCESS_LOGGER)
logger = logging.getLogger(__name__)


class TelemetryMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        state: State,
        metrics: Metrics | None,
        access_log: bool,
        probe_log_level: int,
    ) -> None:
        self.app = app
        self.state = state  # readiness now; tracing once the lifespan has started it
        self.metrics = metrics
        self.access_log = access_log
        self.probe_log_level = probe_log_level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()  # the duration includes this layer's own work
        path: str = scope["path"]
        is_probe = path in PROBE_PATHS
        method: str = scope["method"] if scope["method"] in _KNOWN_METHODS else "_OTHER"
        headers = _headers(scope)
        request_id = _request_id(headers)
        request_token = current_request_id.set(request_id)
        span, span_token = _enter_trace(self.state.tracing, is_probe, method, path, headers)
        if self.metrics is not None and not is_probe:
            self.metrics.in_flight.inc()
        readiness = self.state.readiness
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                # Appended as raw pairs: the app never sets these two itself, and a
                # MutableHeaders round trip costs more than the rest of this function.
                extra = [(b"x-request-id", request_id.encode()), _NOSNIFF]
                if readiness.draining:
                    # Move keep-alive clients off this process before it stops accepting, so
                    # no request is sent on a connection that is about to be closed.
                    extra.append(_CONNECTION_CLOSE)
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            # Only a forced shutdown cancels a request; 499 (client closed request, as nginx
            # logs it) keeps it apart from server errors in the access log.
            status = 499
            raise
        except Exception as error:
            logger.exception("unhandled error")
            if span is not None:
                span.record_exception(error)
            if response_started:
                raise
            response = problem(500, "internal server error; quote the request id when reporting")
            await response(scope, receive, send_with_headers)
        finally:
            duration_ns = time.perf_counter_ns() - started
            self._record(
                scope,
                method,
                headers,
                request_id,
                is_probe=is_probe,
                span=span,
                status=status,
                duration_ns=duration_ns,
            )
            if span_token is not None:
                otel_context.detach(span_token)
            current_request_id.reset(request_token)

    def _record(
        self,
        scope: Scope,
        method: str,
        headers: dict[str, str],
        request_id: str,
        *,
        is_probe: bool,
        span: Span | None,
        status: int,
        duration_ns: int,
    ) -> None:
        """Finish the span, then count and log the request (inside the span's context)."""
        path: str = scope["path"]
        route = _route_template(scope)
        trace_id = span_id = exemplar_trace_id = None
        if span is not None:
            _finish_span(span, route, method, status)
            span_context = span.get_span_context()
            if span_context.is_valid:  # unsampled requests keep their ids in the log line
                trace_id = format(span_context.trace_id, "032x")
                span_id = format(span_context.span_id, "016x")
                if span_context.trace_flags.sampled:  # an exemplar must point at a real trace
                    exemplar_trace_id = trace_id
        metrics = self.metrics
        if metrics is not None:
            if is_probe:
                metrics.observe_probe(path, status)
            else:
                metrics.in_flight.dec()
                metrics.observe_request(method, route, status, duration_ns / 1e9, exemplar_trace_id)
        if not self.access_log:
            return
        level = self.probe_log_level if is_probe else logging.INFO
        if access_logger.isEnabledFor(level):
            client = scope.get("client")
            access = AccessRecord(
                method=method,
                path=path,
                route=route,
                status=status,
                duration_ns=duration_ns,
                client_ip=client[0] if client else None,
                user_agent=headers.get("user-agent"),
            )
            record = AccessLogRecord(
                level,
                access,
                request_id=request_id,
                trace_id=trace_id,
                span_id=span_id,
            )
            access_logger.handle(record)


def _enter_trace(
    tracing: Tracing | None, is_probe: bool, method: str, path: str, headers: dict[str, str]
) -> tuple[Span | None, Token[Context] | None]:
    """Start and enter the SERVER span; return it and the token to leave its context."""
    if tracing is None:
        return None, None
    if is_probe:
        # Not traced, and its readiness query must not become a root span every few seconds.
        return None, otel_context.attach(_SUPPRESSED)
    span = tracing.start_server_span(method, path, headers)
    return span, otel_context.attach(trace.set_span_in_context(span))


# The only request headers telemetry reads; nothing else is decoded (or could be logged).
_WANTED_HEADERS = frozenset({b"x-request-id", b"user-agent", b"traceparent", b"tracestate"})


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in _WANTED_HEADERS
    }


def _request_id(headers: dict[str, str]) -> str:
    candidate = headers.get("x-request-id")
    if candidate is not None and _VALID_REQUEST_ID.fullmatch(candidate):
        return candidate
    # Unique, not secret: 128 random bits without the urandom syscall of uuid4.
    return f"{_ids.getrandbits(128):032x}"


def _route_template(scope: Scope) -> str:
    """The matched route's template (``/api/v1/items/{item_id}``), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


def _finish_span(span: Span, route: str, method: str, status: int) -> None:
    if not span.is_recording():  # unsampled: nothing to name, set or export
        return
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(StatusCode.ERROR)
    span.end()
