"""Per-request context shared by middleware, handlers and log records."""

from contextvars import ContextVar

# Set by TelemetryMiddleware for the duration of each HTTP request.
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="-")
