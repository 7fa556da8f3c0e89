"""/api/v1/chain across real processes: one build deployed twice, as frontend and backend.

The unit tests route downstream calls in-process; these go over loopback TCP between separate
`pleno serve` processes, so they also cover the HTTP client's real timeouts, connection errors,
request-id propagation into another process's log, and a configuration loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pleno import __version__
from tests.integration.conftest import ServerProcess, free_port, server_env

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
CHAIN = "/api/v1/chain"


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One backend for the module: no downstreams, so its chain answers with its identity."""
    tmp = tmp_path_factory.mktemp("backend")
    env = server_env(
        tmp,
        PLENO_SERVICE_NAME="backend",
        PLENO_POD_NAME="backend-0",
        PLENO_LOG_FORMAT="json",
        PLENO_PROBE_LOG_LEVEL="info",  # the chain calls /health too; log it like the rest
    )
    server = ServerProcess(env, tmp / "backend.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _frontend(start_server: StartServer, *urls: str, **settings: str) -> ServerProcess:
    server = start_server(
        PLENO_SERVICE_NAME="frontend",
        PLENO_POD_NAME="frontend-0",
        PLENO_DOWNSTREAM_URLS=",".join(urls),
        **settings,
    )
    server.wait_ready()
    return server


def _access(server: ServerProcess, request_id: str) -> list[tuple[str, int]]:
    """(path, status) of each JSON access line the server wrote for this request id."""
    lines = (json.loads(line) for line in server.log.splitlines() if line.startswith("{"))
    return [
        (line["url.path"], line["http.response.status_code"])
        for line in lines
        if line["log.logger"] == "pleno.access" and line.get("http.request.id") == request_id
    ]


def _wait_for_log(server: ServerProcess, condition: Callable[[str], bool]) -> None:
    # The access line is written once the response has been sent, so it may trail the answer.
    deadline = time.monotonic() + 2
    while not condition(server.log):
        if time.monotonic() > deadline:
            raise AssertionError(f"expected access lines missing:\n{server.log}")
        time.sleep(0.02)


def test_frontend_calls_backend_process_and_propagates_request_id(
    start_server: StartServer, backend: ServerProcess
) -> None:
    urls = (backend.url + CHAIN, backend.url + "/health")
    frontend = _frontend(start_server, *urls)
    request_id = f"chain-it-{time.time_ns()}"

    response = httpx.get(frontend.url + CHAIN, headers={"X-Request-ID": request_id}, timeout=10)

    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    body = response.json()
    assert body["identity"] == {"service": "frontend", "version": __version__, "pod": "frontend-0"}
    assert body["depth"] == 0
    chained, health = body["downstreams"]
    assert chained["url"] == urls[0]
    assert chained["status"] == 200
    assert "error" not in chained
    assert isinstance(chained["latency_ms"], int)
    assert chained["latency_ms"] >= 0
    # The backend answered with its own identity, one level deeper, and called nothing.
    assert chained["body"]["identity"] == {
        "service": "backend",
        "version": __version__,
        "pod": "backend-0",
    }
    assert chained["body"]["depth"] == 1
    assert chained["body"]["downstreams"] == []
    assert health["url"] == urls[1]
    assert health["status"] == 200
    assert health["body"] == {"status": "ok"}

    # The other process logged both calls under the frontend's request id: one id follows a
    # request across services, in logs as in traces.
    _wait_for_log(backend, lambda _: (CHAIN, 200) in _access(backend, request_id))
    _wait_for_log(backend, lambda _: ("/health", 200) in _access(backend, request_id))


def test_unreachable_downstream_gives_502_with_details(start_server: StartServer) -> None:
    closed = f"http://127.0.0.1:{free_port()}{CHAIN}"  # nothing listens there
    frontend = _frontend(start_server, closed)

    started = time.monotonic()
    response = httpx.get(frontend.url + CHAIN, timeout=10)

    assert time.monotonic() - started < 2
    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 502
    assert problem["detail"] == "1 of 1 downstream calls failed"
    assert problem["identity"]["service"] == "frontend"
    assert problem["request_id"] == response.headers["x-request-id"]
    (failed,) = problem["downstreams"]
    assert failed["url"] == closed
    assert failed["status"] is None
    assert failed["error"].startswith("connection error: ConnectError")
    assert "Traceback" not in response.text


def test_slow_downstream_times_out_without_hiding_the_others(
    start_server: StartServer, backend: ServerProcess
) -> None:
    urls = (backend.url + "/delay/5", backend.url + "/health")
    frontend = _frontend(start_server, *urls, PLENO_DOWNSTREAM_TIMEOUT="0.5")

    started = time.monotonic()
    response = httpx.get(frontend.url + CHAIN, timeout=10)
    took = time.monotonic() - started

    assert response.status_code == 502, response.text
    assert took < 2, f"a 0.5s downstream timeout took {took:.2f}s"
    slow, healthy = response.json()["downstreams"]
    assert slow["status"] is None
    assert slow["error"].startswith("timeout: ReadTimeout")
    assert 400 <= slow["latency_ms"] < 2000
    assert healthy["status"] == 200
    assert healthy["body"] == {"status": "ok"}


def test_downstreams_are_called_concurrently(
    start_server: StartServer, backend: ServerProcess
) -> None:
    urls = (backend.url + "/delay/1", backend.url + "/delay/1")
    frontend = _frontend(start_server, *urls)
    httpx.get(frontend.url + CHAIN, timeout=10)  # warm up the frontend's connection pool

    started = time.monotonic()
    response = httpx.get(frontend.url + CHAIN, timeout=10)
    took = time.monotonic() - started

    assert response.status_code == 200, response.text
    downstreams = response.json()["downstreams"]
    assert [d["body"] for d in downstreams] == [{"delayed_seconds": 1.0}] * 2
    assert all(d["latency_ms"] >= 1000 for d in downstreams)
    # One after the other would take 2s or more.
    # Called one after the other they would take 2s or more; together, a little over 1s.
    assert took < 1.7, f"two 1s downstreams took {took:.2f}s: called one after the other?"
    assert took >= 1.0, f"two 1s downstreams answered in {took:.2f}s: did they wait at all?"


def test_a_loop_stops_at_the_depth_limit(start_server: StartServer) -> None:
    # A service configured as its own downstream: each call goes one level deeper.
    port = free_port()
    looped = _frontend(
        start_server,
        f"http://127.0.0.1:{port}{CHAIN}",
        PLENO_PORT=str(port),
        PLENO_LOG_FORMAT="json",
    )

    started = time.monotonic()
    response = httpx.get(looped.url + CHAIN, timeout=15)
    took = time.monotonic() - started

    assert took < 3, f"the loop took {took:.2f}s to stop"
    assert response.status_code == 502, response.text
    # Walk the nested answers: 502 at every level above the limit, 508 at the limit (5).
    levels: list[dict[str, Any]] = [response.json()]
    while levels[-1].get("downstreams"):
        (downstream,) = levels[-1]["downstreams"]
        levels.append(downstream["body"])
    assert [level["status"] for level in levels] == [502, 502, 502, 502, 502, 508]
    assert [level.get("depth") for level in levels[:-1]] == [0, 1, 2, 3, 4]
    assert levels[-1]["detail"] == "call chain depth 5 reached the limit 5"
    # All six calls carried the first request's id, so the loop is easy to find in the log.
    request_id = response.headers["x-request-id"]
    _wait_for_log(
        looped, lambda _: [path for path, _ in _access(looped, request_id)] == [CHAIN] * 6
    )
