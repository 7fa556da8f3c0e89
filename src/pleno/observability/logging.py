"""Process-wide logging: every record, ours or a library's, goes through one formatter on stdout.

Two formats, both one line per record (docs/telemetry.md has the exact grammar):
- json: ECS field names, for Filebeat and Logstash's json branch;
- text: ``<timestamp> <LEVEL> <logger> key=value ...``, for humans and Logstash's grok branch.
Every record carries the request id and, when the request is traced, the trace and span ids.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
from opentelemetry import trace

from pleno.context import current_request_id
from pleno.settings import Settings

ACCESS_LOGGER = "pleno.access"
NO_VALUE = "-"
# Characters a path keeps in the text format; everything else (spaces, quotes, '%', non-ASCII)
# is percent-encoded, so a path is always one whitespace-free token.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """The fields of one access line, attached to the log record as ``record.access``."""

    method: str
    path: str
    route: str
    status: int
    duration_ns: int
    client_ip: str | None
    user_agent: str | None

    @property
    def latency_ms(self) -> int:
        return self.duration_ns // 1_000_000


def access_message(access: AccessRecord) -> str:
    return f"{access.method} {access.route} {access.status} {access.latency_ms}ms"


_PROCESS_START = time.time()
# The LogRecord attributes that are the same on every access line.
_ACCESS_RECORD_CONSTANTS: dict[str, object] = {
    "name": ACCESS_LOGGER,
    "args": None,
    "pathname": __file__,
    "filename": __file__.rpartition("/")[2],
    "module": __name__,
    "lineno": 0,
    "funcName": "access",
    "exc_info": None,
    "exc_text": None,
    "stack_info": None,
    "thread": None,
    "threadName": None,
    "processName": None,
    "process": None,
    "taskName": None,
}


class AccessLogRecord(logging.LogRecord):
    """The access line's record, built without ``Logger.makeRecord``.

    One is made per request, so its cost is per-request overhead: ``LogRecord.__init__``
    derives file, module, thread and process names that no Pleno format prints, and with
    ``Logger.log`` it was the largest single part of the access line's cost in a profile of
    ``pleno serve`` under load. The middleware already holds the request
    and trace ids, so they ride on the record instead of being looked up again by the
    formatter. It is still a real record, sent through ``Logger.handle``: levels, filters and
    every handler (pytest's caplog included) see it like any other.
    """

    def __init__(  # deliberately not calling LogRecord.__init__, see the class docstring
        self,
        level: int,
        access: AccessRecord,
        *,
        request_id: str,
        trace_id: str | None,
        span_id: str | None,
    ) -> None:
        # Formatters read record.__dict__ (%-style formats do), so the constant attributes are
        # copied in too: one dict update, cheaper than setting them one by one.
        self.__dict__.update(_ACCESS_RECORD_CONSTANTS)
        self.msg = access_message(access)
        self.levelno = level
        self.levelname = logging.getLevelName(level)
        self.created = created = time.time()
        self.msecs = int(created * 1000) % 1000
        self.relativeCreated = (created - _PROCESS_START) * 1000
        self.access = access
        self.request_id = request_id
        self.trace_id = trace_id
        self.span_id = span_id


_second_cache: tuple[int, str] = (-1, "")


def _timestamp(created: float) -> str:
    # strftime once per second, not once per line: it is the formatter's costliest call.
    global _second_cache  # noqa: PLW0603 - a one-entry cache; swapping a tuple is thread-safe
    second = int(created)
    if _second_cache[0] != second:
        _second_cache = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{_second_cache[1]}{int((created - second) * 1000):03d}Z"


def _request_id(record: logging.LogRecord) -> str:
    if isinstance(record, AccessLogRecord):
        return record.request_id
    return current_request_id.get()


def _trace_ids(record: logging.LogRecord) -> tuple[str | None, str | None]:
    if isinstance(record, AccessLogRecord):
        return record.trace_id, record.span_id
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class LineFormatter(logging.Formatter):
    """A formatter that also renders a record as the bytes of one stdout line."""

    def format(self, record: logging.LogRecord) -> str:
        return self.line(record)[:-1].decode()

    def line(self, record: logging.LogRecord) -> bytes:
        raise NotImplementedError


class JsonFormatter(LineFormatter):
    def __init__(self, service_name: str, service_version: str) -> None:
        super().__init__()
        self._service = {"service.name": service_name, "service.version": service_version}

    def line(self, record: logging.LogRecord) -> bytes:
        document: dict[str, Any] = {
            "@timestamp": _timestamp(record.created),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
            **self._service,
        }
        request_id = _request_id(record)
        if request_id != NO_VALUE:
            document["http.request.id"] = request_id
        trace_id, span_id = _trace_ids(record)
        if trace_id:
            document["trace.id"] = trace_id
            document["span.id"] = span_id
        access: AccessRecord | None = getattr(record, "access", None)
        if access is not None:
            document["http.request.method"] = access.method
            document["url.path"] = access.path
            document["http.route"] = access.route
            document["http.response.status_code"] = access.status
            document["event.duration"] = access.duration_ns
            document["latency_ms"] = access.latency_ms
            document["client.ip"] = access.client_ip
            document["user_agent.original"] = access.user_agent
        if record.exc_info and record.exc_info[0] is not None:
            document["error.type"] = record.exc_info[0].__name__
            document["error.message"] = str(record.exc_info[1])
            document["error.stack_trace"] = self.formatException(record.exc_info)
        return orjson.dumps(document, option=orjson.OPT_APPEND_NEWLINE)


class TextFormatter(LineFormatter):
    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _trace_ids(record)
        parts = [
            _timestamp(record.created),
            record.levelname,
            record.name,
            f"request_id={_request_id(record)}",
            f"trace_id={trace_id or NO_VALUE}",
            f"span_id={span_id or NO_VALUE}",
        ]
        access: AccessRecord | None = getattr(record, "access", None)
        if access is not None:
            parts += [
                f"method={access.method}",
                f"path={quote(access.path, safe=_PATH_SAFE)}",
                f"route={quote(access.route, safe=_PATH_SAFE + '{}<>')}",
                f"status={access.status}",
                f"latency_ms={access.latency_ms}",
                f"client={access.client_ip or NO_VALUE}",
                f"user_agent={_quoted(access.user_agent or '')}",
            ]
        message = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        parts.append(f"msg={_quoted(message)}")
        return " ".join(parts)

    def line(self, record: logging.LogRecord) -> bytes:
        return f"{self.format(record)}\n".encode()


def _quoted(value: str) -> str:
    # A JSON string literal: double quotes, with '"', '\\' and control characters (newlines
    # included) escaped, so the value never breaks the line or the key=value grammar.
    return orjson.dumps(value).decode()


def resolve_format(settings: Settings) -> str:
    if settings.log_format != "auto":
        return settings.log_format
    return "text" if sys.stdout.isatty() else "json"


class StdoutHandler(logging.Handler):
    """Writes records to file descriptor 1, batching the event loop's lines into one write.

    logging.StreamHandler goes through sys.stdout's text layer and flushes after every record.
    Here, a record logged on a thread that runs an event loop is queued, and at the end of the
    loop's current iteration, microseconds later, the queue is formatted and written with one
    ``os.write``: under load one write(2) carries many lines, and the access lines are formatted
    in one tight loop instead of between requests (their cost is the "metrics + logs" row of
    docs/benchmarks.md). Access records carry their ids, so formatting them late changes
    nothing; any other record is formatted at once, while its request's context is current.
    Records from threads without a loop are written at once, after anything still queued.
    ``flush()`` writes the queue; logging also calls it at interpreter exit.

    The handler's own reentrant lock (``Handler.handle`` holds it around ``emit``) also guards
    the queue and every write(2): a write that a full pipe splits never lets another thread's
    line in between its parts, and a signal handler that logs in the middle of a write, on the
    same thread, does not deadlock.
    """

    def __init__(self, formatter: LineFormatter, fd: int = 1) -> None:
        super().__init__()
        self.formatter: LineFormatter = formatter
        self._fd = fd
        self._queued: list[logging.LogRecord | bytes] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None  # the loop a flush waits on

    def setFormatter(self, fmt: logging.Formatter | None) -> None:  # noqa: N802 - logging's name
        if not isinstance(fmt, LineFormatter):
            raise TypeError("StdoutHandler needs a LineFormatter (JsonFormatter or TextFormatter)")
        self.formatter = fmt

    def emit(self, record: logging.LogRecord) -> None:
        try:
            with self._locked():
                loop = asyncio._get_running_loop()
                if loop is None:
                    self._write(self._take_queued() + self.formatter.line(record))
                    return
                if isinstance(record, AccessLogRecord):
                    self._queued.append(record)
                else:
                    self._queued.append(self.formatter.line(record))
                # Once per loop iteration; also on a new loop, if an old one closed before its
                # flush ran (that flush never comes).
                if self._flush_on is not loop:
                    self._flush_on = loop
                    loop.call_soon(self.flush)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self._locked():
            try:
                self._write(self._take_queued())
            except Exception:
                # Reported on stderr, as logging reports its own errors; never logged again,
                # which would queue another record whose write fails the same way.
                self.handleError(logging.makeLogRecord({"msg": "queued log lines lost"}))

    def _take_queued(self) -> bytes:
        queued, self._queued = self._queued, []
        self._flush_on = None
        lines = []
        for item in queued:
            if isinstance(item, bytes):
                lines.append(item)
                continue
            try:
                lines.append(self.formatter.line(item))
            except Exception:
                self.handleError(item)
        return b"".join(lines)

    def _locked(self) -> threading.RLock:
        lock = self.lock
        assert lock is not None  # noqa: S101 - Handler.__init__ always makes one
        return lock

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a pipe can take less than asked; finish the line rather than cut it
            view = view[os.write(self._fd, view) :]


def configure_logging(settings: Settings, service_version: str) -> None:
    formatter: LineFormatter
    if resolve_format(settings) == "json":
        formatter = JsonFormatter(settings.service_name, service_version)
    else:
        formatter = TextFormatter()
    sys.stdout.flush()  # anything printed before now goes out before the first log line
    handler = StdoutHandler(formatter, sys.stdout.fileno())
    # Per the logging HOWTO's "Optimization" section: no format here prints the caller's file,
    # thread or process, so don't collect them; findCaller() walks the stack on every record.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # uvicorn's own loggers propagate to the root handler; its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # httpx logs every downstream call at INFO; the access line per request already covers it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
