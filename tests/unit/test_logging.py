"""Access logs and every other record: one formatter, one line, ECS JSON or key=value text."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from pleno.observability.logging import (
    JsonFormatter,
    StdoutHandler,
    TextFormatter,
    configure_logging,
    resolve_format,
)
from tests.conftest import ADMIN_TOKEN, AppClient, make_settings
from tests.support.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.anyio

# The text access line's grammar, as docs/telemetry.md states it and the grok pattern parses it.
TEXT_ACCESS_LINE = re.compile(
    r"^(?P<timestamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<level>[A-Z]+) pleno\.access "
    r"request_id=(?P<request_id>\S+) trace_id=(?P<trace_id>[0-9a-f]{32}|-) "
    r"span_id=(?P<span_id>[0-9a-f]{16}|-) method=(?P<method>[A-Z_]+) path=(?P<path>\S+) "
    r"route=(?P<route>\S+) status=(?P<status>\d{3}) latency_ms=(?P<latency_ms>\d+) "
    r"client=(?P<client>\S+) user_agent=(?P<user_agent>\"(?:[^\"\\]|\\.)*\") "
    r"msg=(?P<msg>\"(?:[^\"\\]|\\.)*\")$"
)


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    # aiosqlite's worker thread logs at DEBUG whenever it likes, possibly before a test has set
    # its formatter; those lines are not what these tests read.
    handler.addFilter(lambda record: not record.name.startswith("aiosqlite"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream, handler
    root.removeHandler(handler)
    root.setLevel(previous_level)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_one_json_access_line_per_request_with_ecs_fields(
    sqlite_client: AppClient, capture: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = capture
    handler.setFormatter(JsonFormatter("pleno", "1.2.3"))
    response = await sqlite_client.get(
        "/api/v1/items/7", headers={"User-Agent": "probe/1.0", "X-Request-ID": "req-json-1"}
    )
    assert response.status_code == 404
    access = [line for line in json_lines(stream) if line["log.logger"] == "pleno.access"]
    assert len(access) == 1
    (line,) = access
    assert line["log.level"] == "info"
    assert line["message"] == "GET /api/v1/items/{item_id} 404 " + f"{line['latency_ms']}ms"
    assert line["service.name"] == "pleno"
    assert line["service.version"] == "1.2.3"
    assert line["http.request.method"] == "GET"
    assert line["url.path"] == "/api/v1/items/7"
    assert line["http.route"] == "/api/v1/items/{item_id}"
    assert line["http.response.status_code"] == 404
    assert isinstance(line["event.duration"], int)
    assert isinstance(line["latency_ms"], int)
    assert line["latency_ms"] == line["event.duration"] // 1_000_000
    assert line["client.ip"] == "127.0.0.1"
    assert line["user_agent.original"] == "probe/1.0"
    assert line["http.request.id"] == "req-json-1"
    assert str(line["@timestamp"]).endswith("Z")
    assert "trace.id" not in line, "no trace id when tracing is off"


async def test_text_access_line_follows_the_grammar(
    sqlite_client: AppClient, capture: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = capture
    handler.setFormatter(TextFormatter())
    odd_path = '/no such/"path"%/ü'
    await sqlite_client.get(odd_path, headers={"User-Agent": 'agent "quoted"\tand tab'})
    await sqlite_client.post("/api/v1/items", json={"name": "text"})
    lines = [line for line in stream.getvalue().splitlines() if " pleno.access " in line]
    assert len(lines) == 2
    odd, created = (TEXT_ACCESS_LINE.match(line) for line in lines)
    assert odd is not None, lines[0]
    assert created is not None, lines[1]
    assert odd["path"] == "/no%20such/%22path%22%25/%C3%BC"
    assert odd["route"] == "<unmatched>"
    assert odd["status"] == "404"
    assert json.loads(odd["user_agent"]) == 'agent "quoted"\tand tab'
    assert created["method"] == "POST"
    assert created["route"] == "/api/v1/items"
    assert created["status"] == "201"
    assert int(created["latency_ms"]) >= 0


async def test_probe_lines_are_debug(
    sqlite_client: AppClient, capture: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = capture
    handler.setFormatter(JsonFormatter("pleno", "0"))
    for path in ("/health", "/ready", "/metrics", "/version"):
        await sqlite_client.get(path)
    levels = {
        line["url.path"]: line["log.level"]
        for line in json_lines(stream)
        if line["log.logger"] == "pleno.access"
    }
    assert levels == {
        "/health": "debug",
        "/ready": "debug",
        "/metrics": "debug",
        "/version": "info",
    }


async def test_credentials_never_reach_the_log(
    guarded_client: AppClient, capture: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = capture
    handler.setFormatter(JsonFormatter("pleno", "0"))
    for token in (ADMIN_TOKEN, "tok-Wrong-Guess-7"):
        await guarded_client.post("/ready/disable", headers={"Authorization": f"Bearer {token}"})
    await guarded_client.get("/api/v1/items", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    output = stream.getvalue()
    assert "pleno.access" in output
    assert "tok-" not in output
    assert "Bearer" not in output


async def test_other_records_share_the_format_and_request_id(
    sqlite_client: AppClient, capture: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = capture
    handler.setFormatter(JsonFormatter("pleno", "0"))

    async def explode() -> None:
        raise RuntimeError("boom")

    sqlite_client.app.add_api_route("/explode", explode)
    await sqlite_client.get("/explode", headers={"X-Request-ID": "req-boom"})
    lines = json_lines(stream)
    error = next(line for line in lines if line["log.logger"] == "pleno.observability.middleware")
    access = next(line for line in lines if line["log.logger"] == "pleno.access")
    assert error["http.request.id"] == access["http.request.id"] == "req-boom"
    assert error["log.level"] == "error"
    assert error["error.type"] == "RuntimeError"
    assert "Traceback" in str(error["error.stack_trace"])
    assert access["http.response.status_code"] == 500


def test_text_records_stay_on_one_line() -> None:
    record = logging.LogRecord(
        "lib", logging.WARNING, __file__, 1, 'two\nlines "quoted"', None, None
    )
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert line.endswith('msg="two\\nlines \\"quoted\\""')


def test_auto_format_is_json_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    auto = make_settings("sqlite://", log_format="auto")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)  # a container's pipe or a file
    assert resolve_format(auto) == "json"
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a developer's terminal
    assert resolve_format(auto) == "text"
    assert resolve_format(make_settings("sqlite://", log_format="json")) == "json"


async def test_traced_lines_carry_the_span_ids(
    traced_client: AppClient, receiver: OtlpReceiver, capture: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = capture
    handler.setFormatter(JsonFormatter("pleno", "0"))
    await traced_client.get("/api/v1/items")
    (access,) = [line for line in json_lines(stream) if line["log.logger"] == "pleno.access"]
    traced_client.app.state.tracing.provider.force_flush()
    spans = receiver.wait_for(lambda spans: any(span.kind == "SERVER" for span in spans))
    server = next(span for span in spans if span.kind == "SERVER")
    assert server.name == "GET /api/v1/items"
    assert access["trace.id"] == server.trace_id
    assert access["span.id"] == server.span_id


async def test_other_records_in_a_traced_request_carry_its_trace_and_span_ids(
    traced_client: AppClient, receiver: OtlpReceiver, capture: tuple[io.StringIO, logging.Handler]
) -> None:
    stream, handler = capture
    handler.setFormatter(JsonFormatter("pleno", "0"))

    async def chatty() -> dict[str, str]:
        logging.getLogger("some.library").warning("a library speaks")
        return {}

    traced_client.app.add_api_route("/chatty", chatty)
    await traced_client.get("/chatty", headers={"X-Request-ID": "req-chatty"})
    lines = json_lines(stream)
    library = next(line for line in lines if line["log.logger"] == "some.library")
    access = next(line for line in lines if line["log.logger"] == "pleno.access")
    assert library["http.request.id"] == access["http.request.id"] == "req-chatty"
    assert library["trace.id"] == access["trace.id"]
    assert library["span.id"] == access["span.id"]
    assert len(str(library["trace.id"])) == 32


def _record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("lib", level, __file__, 1, message, None, None)


@pytest.mark.parametrize("formatter", [JsonFormatter("pleno", "0"), TextFormatter()])
def test_stdout_handler_writes_the_formatted_line_whole(formatter: JsonFormatter) -> None:
    # A record far larger than a pipe's buffer (64 KiB on Linux): os.write returns short, and
    # the handler must finish the line, not drop its tail.
    big = _record("x" * 300_000)
    small = _record("after")
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(
        target=lambda: chunks.extend(iter(lambda: os.read(read_end, 65536), b""))
    )
    reader.start()
    try:
        handler = StdoutHandler(formatter, write_end)
        handler.handle(big)
        handler.handle(small)
    finally:
        os.close(write_end)
        reader.join(timeout=10)
        os.close(read_end)
    lines = b"".join(chunks).decode().split("\n")
    assert lines == [formatter.format(big), formatter.format(small), ""]


async def test_loop_lines_are_queued_then_written_together_in_order() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    formatter = JsonFormatter("pleno", "0")
    handler = StdoutHandler(formatter, write_end)
    try:
        records = [_record(f"line {n}") for n in range(3)]
        for record in records:
            handler.handle(record)
        with pytest.raises(BlockingIOError):  # nothing written while the loop is busy
            os.read(read_end, 65536)
        await asyncio.sleep(0)  # the loop's next iteration runs the scheduled flush
        written = os.read(read_end, 65536).decode()
        assert written == "".join(f"{formatter.format(r)}\n" for r in records)
        handler.handle(_record("at exit"))
        handler.flush()  # what logging.shutdown() calls when the interpreter exits
        assert json.loads(os.read(read_end, 65536))["message"] == "at exit"
    finally:
        os.close(write_end)
        os.close(read_end)


async def test_lines_from_other_threads_never_split_a_queued_batch() -> None:
    # The reader drains the pipe slowly, so the loop's big batch goes out in many partial
    # writes while another thread keeps logging: no line may land inside another.
    read_end, write_end = os.pipe()
    received: list[bytes] = []

    def slow_reader() -> None:
        while chunk := os.read(read_end, 4096):
            received.append(chunk)
            time.sleep(0.0005)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    handler = StdoutHandler(JsonFormatter("pleno", "0"), write_end)
    try:
        for n in range(40):
            handler.handle(_record(f"loop {n} " + "x" * 5000))
        chatter = threading.Thread(
            target=lambda: [handler.handle(_record(f"thread {n}")) for n in range(200)]
        )
        chatter.start()
        await asyncio.sleep(0)  # the flush: 200 KB, far beyond what the pipe takes at once
        chatter.join()
    finally:
        os.close(write_end)
        reader.join(timeout=10)
        os.close(read_end)
    messages = [json.loads(line)["message"] for line in b"".join(received).splitlines()]
    assert sorted(m.split()[0] for m in messages) == ["loop"] * 40 + ["thread"] * 200
    assert [m for m in messages if m.startswith("loop")] == [
        f"loop {n} " + "x" * 5000 for n in range(40)
    ]


async def test_a_failed_write_is_reported_once_and_not_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that went away: every write fails with EPIPE
    handler = StdoutHandler(JsonFormatter("pleno", "0"), write_end)
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)
    try:
        handler.handle(_record("one"))
        handler.handle(_record("two"))
        for _ in range(5):  # a flush that re-queued itself would run again here
            await asyncio.sleep(0)
    finally:
        os.close(write_end)
    assert [record.getMessage() for record in reported] == ["queued log lines lost"]


def test_lines_queued_on_a_loop_that_closed_go_out_with_the_next_loop() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    handler = StdoutHandler(JsonFormatter("pleno", "0"), write_end)
    try:
        first = asyncio.new_event_loop()
        first.call_soon(handler.handle, _record("before close"))
        first.call_soon(first.stop)  # stops before the flush that the record scheduled
        first.run_forever()
        first.close()
        with pytest.raises(BlockingIOError):
            os.read(read_end, 65536)

        async def log_again() -> None:
            handler.handle(_record("on the next loop"))
            await asyncio.sleep(0)

        asyncio.run(log_again())
        written = os.read(read_end, 65536).splitlines()
    finally:
        os.close(write_end)
        os.close(read_end)
    assert [json.loads(line)["message"] for line in written] == ["before close", "on the next loop"]


def test_logging_from_inside_a_write_does_not_deadlock() -> None:
    # What a signal handler that logs does when the signal lands while this thread is inside
    # the handler's write (a slow pipe): it logs again, on the same thread, with the lock held.
    class InterruptedHandler(StdoutHandler):
        interrupted = False

        def _write(self, data: bytes) -> None:
            if not self.interrupted:
                self.interrupted = True
                self.handle(_record("from the signal handler"))
            super()._write(data)

    read_end, write_end = os.pipe()
    handler = InterruptedHandler(JsonFormatter("pleno", "0"), write_end)
    worker = threading.Thread(target=handler.handle, args=(_record("first"),), daemon=True)
    worker.start()
    worker.join(timeout=5)
    try:
        assert not worker.is_alive(), "the second record waited forever for the first's lock"
        os.close(write_end)
        written = b"".join(iter(lambda: os.read(read_end, 65536), b""))
    finally:
        os.close(read_end)
    messages = [json.loads(line)["message"] for line in written.splitlines()]
    assert messages == ["from the signal handler", "first"]


def test_stdout_handler_takes_only_line_formatters() -> None:
    handler = StdoutHandler(TextFormatter())
    with pytest.raises(TypeError, match="LineFormatter"):
        handler.setFormatter(logging.Formatter())


def test_configure_logging_puts_one_stdout_handler_on_the_root(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # configure_logging changes process-wide state; all of it is put back for later tests.
    for flag in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, flag, getattr(logging, flag))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        monkeypatch.setattr(named, "handlers", list(named.handlers))
        monkeypatch.setattr(named, "propagate", named.propagate)
    httpx_level = logging.getLogger("httpx").level
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging(make_settings("sqlite://", log_format="json"), "9.9.9")
        (handler,) = root.handlers
        assert isinstance(handler, StdoutHandler)
        logging.getLogger("uvicorn.error").warning("from a library")
        (line,) = [json.loads(text) for text in capfd.readouterr().out.splitlines()]
    finally:
        root.handlers[:] = handlers
        # setLevel, not assignment: it also clears the loggers' level caches
        root.setLevel(level)
        logging.getLogger("httpx").setLevel(httpx_level)
    assert line["log.logger"] == "uvicorn.error"
    assert line["message"] == "from a library"
    assert line["service.version"] == "9.9.9"
