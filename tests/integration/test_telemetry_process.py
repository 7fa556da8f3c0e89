"""Telemetry of a real `pleno serve` process: every stdout line in one format, spans flushed at
shutdown."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.conftest import ServerProcess
from tests.support.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]


def test_every_line_is_json_and_each_request_logs_once(start_server: StartServer) -> None:
    server = start_server(PLENO_LOG_FORMAT="json")
    server.wait_ready()
    for index in range(3):
        response = httpx.get(server.url + "/version", headers={"X-Request-ID": f"once-{index}"})
        assert response.status_code == 200
    httpx.get(server.url + "/health")
    server.signal(signal.SIGTERM)
    assert server.wait_exit(timeout=15) == 0
    records = [json.loads(line) for line in server.log.splitlines()]  # every line is JSON
    loggers = {record["log.logger"] for record in records}
    assert {"uvicorn.error", "pleno.server", "pleno.app", "alembic.runtime.migration"} <= loggers
    assert "uvicorn.access" not in loggers, "uvicorn's access log is off: no duplicates"
    access = [record for record in records if record["log.logger"] == "pleno.access"]
    assert [record["http.request.id"] for record in access] == ["once-0", "once-1", "once-2"]
    assert all(record["log.level"] == "info" for record in access)
    # Probe lines are DEBUG, below the default INFO level: the stream is not full of probes.
    assert not any(record.get("url.path") == "/health" for record in records)


def test_text_format_on_request(start_server: StartServer) -> None:
    server = start_server(PLENO_LOG_FORMAT="text", PLENO_PROBE_LOG_LEVEL="info")
    server.wait_ready()
    httpx.get(server.url + "/health", headers={"X-Request-ID": "text-probe"})
    server.signal(signal.SIGTERM)
    assert server.wait_exit(timeout=15) == 0
    (line,) = [line for line in server.log.splitlines() if "request_id=text-probe" in line]
    assert " INFO pleno.access " in line
    assert " path=/health route=/health status=200 " in line


def test_spans_are_flushed_at_shutdown_after_the_drain(
    start_server: StartServer, receiver: OtlpReceiver
) -> None:
    server = start_server(
        PLENO_LOG_FORMAT="json",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_TRACES_SAMPLER="always_on",
        # An hour between timed exports, and batches far larger than this test makes: whatever
        # arrives was sent by the shutdown flush.
        OTEL_BSP_SCHEDULE_DELAY="3600000",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="512",
    )
    server.wait_ready()
    assert httpx.get(server.url + "/api/v1/items").status_code == 200
    with ThreadPoolExecutor(max_workers=1) as pool:
        # In flight when SIGTERM arrives: the drain lets it finish, and only then is its span
        # (which ends with the response) flushed.
        slow = pool.submit(httpx.get, server.url + "/delay/1", timeout=10)
        _wait_in_flight(server.url, 1)
        assert receiver.spans == []
        server.signal(signal.SIGTERM)
        assert slow.result().status_code == 200
    assert server.wait_exit(timeout=15) == 0
    names = {span.name for span in receiver.spans if span.kind == "SERVER"}
    assert names == {"GET /api/v1/items", "GET /delay/{seconds}"}
    records = [json.loads(line) for line in server.log.splitlines()]
    messages = [record["message"] for record in records]
    delay_line = next(i for i, r in enumerate(records) if r.get("http.route") == "/delay/{seconds}")
    assert delay_line < messages.index("spans flushed") < messages.index("database pool closed")


def _wait_in_flight(url: str, count: int, timeout: float = 5.0) -> None:
    """Wait until the in-flight gauge shows `count` API requests being handled."""
    expected = f"pleno_http_requests_in_flight {count:.1f}"
    deadline = time.monotonic() + timeout
    while expected not in httpx.get(url + "/metrics").text:
        assert time.monotonic() < deadline, f"no {expected!r} within {timeout} s"
        time.sleep(0.02)
