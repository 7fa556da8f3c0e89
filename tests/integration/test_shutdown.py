"""The shutdown sequence of a real `pleno serve` process (src/pleno/server.py).

On SIGTERM readiness fails at once while liveness stays up; traffic is served for
PLENO_SHUTDOWN_DELAY seconds; then the listener closes, in-flight requests drain, the pool
closes and the process exits 0. A second signal forces a quick exit with 1.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]

# One access line per request, in the text format (docs/telemetry.md):
# "... pleno.access request_id=<id> trace_id=- span_id=- method=GET path=/x route=/x status=200 ..."
_ACCESS_LINE = re.compile(
    r"pleno\.access request_id=(?P<id>\S+) .*? path=(?P<path>\S+) route=\S+ status=(?P<status>\d+) "
)


def _wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _wait_for_log(server: ServerProcess, text: str, timeout: float) -> None:
    if not _wait_for(lambda: text in server.log, timeout):
        raise AssertionError(f"{text!r} not logged within {timeout}s:\n{server.log}")


def _assert_clean_graceful_log(server: ServerProcess) -> None:
    log = server.log
    # The order is the contract: readiness first, listener closed, drain, then pools.
    markers = [
        "readiness now fails",
        "Shutting down",
        "database pool closed",
        "Finished server process",
    ]
    positions = [log.find(marker) for marker in markers]
    assert all(position >= 0 for position in positions), f"missing shutdown step:\n{log}"
    assert positions == sorted(positions), f"shutdown steps out of order:\n{log}"
    for bad in ("Traceback", "ERROR", "forcing exit", "timeout graceful shutdown exceeded"):
        assert bad not in log, f"{bad!r} in a graceful shutdown log:\n{log}"


def _fresh_connections(server: ServerProcess) -> httpx.Client:
    """A client that opens a new connection per request, as kubelet and a proxy would."""
    return httpx.Client(
        base_url=server.url, timeout=2, limits=httpx.Limits(max_keepalive_connections=0)
    )


def test_sigterm_fails_readiness_at_once_and_serves_through_the_delay(
    start_server: StartServer,
) -> None:
    delay = 2.0
    server = start_server(PLENO_SHUTDOWN_DELAY=str(delay), PLENO_DRAIN_TIMEOUT="10")
    server.wait_ready()
    client = _fresh_connections(server)
    assert client.get("/ready").status_code == 200

    server.signal(signal.SIGTERM)
    signalled = time.monotonic()
    answers: list[httpx.Response] = []
    while not answers or answers[-1].status_code == 200:
        assert time.monotonic() - signalled < 0.3, "/ready still 200 0.3s after SIGTERM"
        answers.append(client.get("/ready"))
    checks = answers[-1].json()["checks"]
    assert answers[-1].status_code == 503
    assert checks["draining"] == {"ok": False, "reason": "shutting down"}
    assert checks["database"] == {"ok": True}, "only draining may fail here"

    # Throughout the delay, on new connections (from proxies that have not yet seen the
    # endpoint removal): liveness is up, readiness down, and real work is served.
    served_during_delay = 0
    while time.monotonic() - signalled < delay - 0.5:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503
        response = client.get("/api/v1/work", params={"cpu_ms": 1})
        assert response.status_code == 200, response.text
        assert response.headers["connection"] == "close"
        served_during_delay += 1
        time.sleep(0.05)
    client.close()
    assert served_during_delay >= 5
    assert server.process.poll() is None, "exited before PLENO_SHUTDOWN_DELAY elapsed"

    exit_code = server.wait_exit(timeout=10)
    exited_after = time.monotonic() - signalled
    assert exit_code == 0, server.log
    # Exits once the delay is over and nothing is in flight: not early, and nowhere near the
    # delay + drain timeout (12s) that would mean the drain hung.
    assert delay <= exited_after < delay + 2.5, f"exited {exited_after:.2f}s after SIGTERM"
    _assert_clean_graceful_log(server)


def test_in_flight_slow_requests_complete_and_new_connections_are_refused(
    start_server: StartServer,
) -> None:
    delay, slow_seconds, concurrency = 1.0, 3, 4
    server = start_server(PLENO_SHUTDOWN_DELAY=str(delay), PLENO_DRAIN_TIMEOUT="10")
    server.wait_ready()

    def slow_request() -> httpx.Response:
        return httpx.get(f"{server.url}/delay/{slow_seconds}", timeout=slow_seconds + 10)

    with ThreadPoolExecutor(concurrency) as pool, _fresh_connections(server) as probe:
        started = time.monotonic()
        futures = [pool.submit(slow_request) for _ in range(concurrency)]
        time.sleep(0.5)  # well inside the slow requests: they are all in flight
        assert not any(future.done() for future in futures)
        server.signal(signal.SIGTERM)

        # After the delay the listener is closed while the slow requests still run: a new
        # connection is refused rather than accepted and then dropped.
        refused = False
        while time.monotonic() - started < slow_seconds - 0.3:
            try:
                probe.get("/health")
            except httpx.ConnectError:
                refused = True
                break
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # This probe raced the listener closing: it was reset, unanswered, before any
                # request was read. The delay exists so that real clients never hit this race.
                continue
            time.sleep(0.05)
        assert refused, "the listener still accepted connections during the drain"
        assert server.process.poll() is None, "exited with requests still in flight"
        assert not any(future.done() for future in futures)

        responses = [future.result() for future in futures]
    finished = time.monotonic() - started

    for response in responses:
        assert response.status_code == 200, response.text
        assert response.json() == {"delayed_seconds": slow_seconds}
        # The response began after SIGTERM, so it tells the client to drop the connection.
        assert response.headers["connection"] == "close"
    assert finished >= slow_seconds
    assert server.wait_exit(timeout=10) == 0, server.log
    assert "Waiting for connections to close" in server.log
    _assert_clean_graceful_log(server)


@dataclass
class _Sent:
    request_id: str
    sent_at: float
    status: int | None = None
    connection_header: str | None = None
    # The network stream object, kept alive so that `is` identifies one TCP connection.
    stream: object = None
    error: str | None = None


@dataclass
class _LoadClient:
    """One keep-alive client that sends requests back to back until told to stop."""

    url: str
    name: str
    stop: threading.Event
    sent: list[_Sent] = field(default_factory=list)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self.stop.is_set():
                record = _Sent(f"{self.name}-{len(self.sent)}", time.monotonic())
                self.sent.append(record)
                headers = {"X-Request-ID": record.request_id}
                try:
                    with client.stream("GET", "/delay/0.01", headers=headers) as response:
                        record.stream = response.extensions["network_stream"]
                        response.read()
                        record.status = response.status_code
                        record.connection_header = response.headers.get("connection")
                except httpx.HTTPError as error:
                    record.error = f"{type(error).__name__}: {error}"


def test_keep_alive_load_across_shutdown_loses_no_accepted_request(
    start_server: StartServer,
) -> None:
    """A steady keep-alive load, stopped shortly before the delay ends (by then Kubernetes
    has removed the endpoint and stopped routing here), loses no request.

    "Loses no request" is checked from both sides: every request a client sent got a 2xx, and
    the server's access log holds exactly the request ids the clients sent, no more, no fewer.
    The test cannot pass vacuously: each client must have sent many requests after readiness
    failed, must have used keep-alive before SIGTERM, and must have been moved off every
    kept-alive connection by `Connection: close` afterwards.
    """
    delay, routing_stops_before_end = 3.0, 0.5
    server = start_server(PLENO_SHUTDOWN_DELAY=str(delay), PLENO_DRAIN_TIMEOUT="10")
    server.wait_ready()

    stop = threading.Event()
    clients = [_LoadClient(server.url, f"load{n}", stop) for n in range(4)]
    threads = [threading.Thread(target=client.run, daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # steady state, on kept-alive connections

    server.signal(signal.SIGTERM)
    signalled = time.monotonic()
    with _fresh_connections(server) as probe:
        assert _wait_for(lambda: probe.get("/ready").status_code == 503, timeout=0.3)
    draining_seen = time.monotonic()

    time.sleep(delay - routing_stops_before_end - (time.monotonic() - signalled))
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)
    load_stopped = time.monotonic() - signalled
    assert server.process.poll() is None, "exited while still routed traffic"

    assert server.wait_exit(timeout=10) == 0, server.log
    _assert_clean_graceful_log(server)

    sent = [record for client in clients for record in client.sent]
    failures = [record for record in sent if record.error or record.status != 200]
    assert not failures, f"{len(failures)} of {len(sent)} requests failed: {failures[:5]}"

    # Server side: exactly the requests the clients sent were accepted and answered.
    logged = {
        match["id"]
        for match in _ACCESS_LINE.finditer(server.log)
        if match["path"] == "/delay/0.01" and match["status"] == "200"
    }
    assert logged == {record.request_id for record in sent}

    for client in clients:
        before = [record for record in client.sent if record.sent_at < signalled]
        after = [record for record in client.sent if record.sent_at > draining_seen]
        # Keep-alive really was in use before SIGTERM: many requests per connection.
        connections_before = _distinct(record.stream for record in before)
        assert len(before) >= 10, f"{client.name}: too little load before SIGTERM"
        assert connections_before <= 2, f"{client.name}: no keep-alive ({connections_before})"
        # The load really crossed the shutdown window, up to shortly before the delay ended.
        assert len(after) >= 20, f"{client.name}: only {len(after)} requests after SIGTERM"
        assert after[-1].sent_at - signalled >= delay - routing_stops_before_end - 0.3
        # Every response while draining told the client to close, and the client did: no
        # connection carried more than one request once readiness had failed.
        assert all(record.connection_header == "close" for record in after)
        assert _distinct(record.stream for record in after) == len(after)
    assert load_stopped < delay


def _distinct(streams: Iterable[object]) -> int:
    unique: list[object] = []
    for stream in streams:
        if not any(stream is seen for seen in unique):
            unique.append(stream)
    return len(unique)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_second_signal_forces_a_quick_exit(
    start_server: StartServer, second: signal.Signals
) -> None:
    server = start_server(PLENO_SHUTDOWN_DELAY="0", PLENO_DRAIN_TIMEOUT="30")
    server.wait_ready()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, server.url + "/delay/20", timeout=30)
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        # Draining, and the drain would wait up to 20s for the slow request.
        _wait_for_log(server, "Waiting for connections to close", timeout=3)
        time.sleep(0.3)
        assert server.process.poll() is None

        server.signal(second)
        forced = time.monotonic()
        exit_code = server.wait_exit(timeout=5)
        took = time.monotonic() - forced
        assert exit_code == 1, server.log
        assert took < 3, f"forced exit took {took:.2f}s"
        assert f"second {second.name}: forcing exit" in server.log

        # The abandoned request did not pretend to succeed.
        try:
            cut_short: int | str = slow.result(timeout=5).status_code
        except httpx.HTTPError as error:
            cut_short = type(error).__name__
        assert cut_short != 200
        # ...and the access log tells a cancelled request apart from a server error.
        assert "path=/delay/20 route=/delay/{seconds} status=499 " in server.log


def test_sigint_alone_skips_the_delay(start_server: StartServer) -> None:
    # Ctrl-C on a terminal: nothing routes here through a load balancer, so no delay.
    server = start_server(PLENO_SHUTDOWN_DELAY="30", PLENO_DRAIN_TIMEOUT="10")
    server.wait_ready()
    server.signal(signal.SIGINT)
    signalled = time.monotonic()
    assert server.wait_exit(timeout=5) == 0, server.log
    assert time.monotonic() - signalled < 3
    assert "SIGINT: readiness now fails; serving 0.0s more" in server.log
    _assert_clean_graceful_log(server)
