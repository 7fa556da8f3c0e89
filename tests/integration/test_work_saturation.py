"""Probes keep answering while /api/v1/work saturates every core of a real server process.

/work burns CPU in worker threads behind a limiter (src/pleno/api/work.py), so the event loop
stays free; if it did not, kubelet's liveness probe would time out under load and restart a
busy pod, the opposite of what the HPA is for.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.integration

PROBE_BUDGET_S = 1.0  # kubelet's default probe timeoutSeconds
STREAMS = 8  # twice the default PLENO_WORK_CONCURRENCY (4): calls queue in the limiter too
CPU_MS = 500
WINDOW_S = 4.0
CORES = os.cpu_count() or 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _CpuSample:
    wall: float
    process: float  # CPU seconds used by the server process, all threads
    idle: float  # core-seconds the whole machine spent idle or waiting for I/O


def _cpu_sample(pid: int) -> _CpuSample:
    # /proc/<pid>/stat: utime and stime are fields 14 and 15, in clock ticks. Split after the
    # ")" that closes the command name, which may itself contain spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    process = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    # /proc/stat "cpu" line: user nice system idle iowait ..., summed over all cores.
    totals = Path("/proc/stat").read_text().splitlines()[0].split()
    idle = (int(totals[4]) + int(totals[5])) / _CLOCK_TICKS
    return _CpuSample(time.monotonic(), process, idle)


@dataclass
class _WorkStream:
    url: str
    stop: threading.Event
    completed: int = 0
    cpu_ms_used: float = 0.0
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.get("/api/v1/work", params={"cpu_ms": CPU_MS})
                except httpx.HTTPError as error:
                    self.errors.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code != 200:
                    self.errors.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                self.completed += 1
                self.cpu_ms_used += response.json()["cpu_ms_used"]


def test_probes_answer_within_a_second_while_work_saturates_the_cpu(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    server.wait_ready()
    pid = server.process.pid

    stop = threading.Event()
    streams = [_WorkStream(server.url, stop) for _ in range(STREAMS)]
    threads = [threading.Thread(target=stream.run, daemon=True) for stream in streams]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # let every worker thread get busy before measuring

    # A new connection per probe, as kubelet makes one; one client, so the test does not
    # time its own TLS-context setup. The client timeout is generous so that a slow answer is
    # measured rather than turned into an error.
    latencies: dict[str, list[float]] = {"/health": [], "/ready": []}
    bad: list[str] = []
    no_keep_alive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=server.url, timeout=5, limits=no_keep_alive) as probe:
        before = _cpu_sample(pid)
        while time.monotonic() - before.wall < WINDOW_S:
            for path, seen in latencies.items():
                started = time.monotonic()
                try:
                    status = probe.get(path).status_code
                except httpx.HTTPError as error:
                    status = 0
                    bad.append(f"{path}: {type(error).__name__}: {error}")
                seen.append(time.monotonic() - started)
                if status != 200:
                    bad.append(f"{path}: HTTP {status}")
            time.sleep(0.1)
        after = _cpu_sample(pid)

    stop.set()
    for thread in threads:
        thread.join(timeout=15)
    assert not any(thread.is_alive() for thread in threads)

    wall = after.wall - before.wall
    server_cores = (after.process - before.process) / wall
    idle_cores = (after.idle - before.idle) / wall
    worst = {path: max(seen) for path, seen in latencies.items()}
    summary = (
        f"{sum(map(len, latencies.values()))} probes, worst latency "
        + ", ".join(f"{path} {seconds * 1000:.0f}ms" for path, seconds in worst.items())
        + f"; over {wall:.1f}s the server used {server_cores:.2f} of {CORES} cores,"
        f" {idle_cores:.2f} cores were idle"
    )
    assert not bad, f"{bad[:5]} ({summary})"
    assert all(len(seen) >= 10 for seen in latencies.values()), summary
    assert max(worst.values()) < PROBE_BUDGET_S, summary

    # Not vacuous: the CPU really was saturated, and by the server. Other processes may share
    # the machine (tests run in parallel), so the bar is what they left: little idle, and the
    # server took at least 3/4 of the CPU the others did not use. On a quiet 2-core machine
    # that means 1.5 cores or more, where a burn that held the GIL would use about 1.
    # Measured: 1.2-1.85 cores used with 0.02-0.1 idle; 1.7 and 0.18 under coverage.
    others_cores = CORES - idle_cores - server_cores
    assert idle_cores < 0.25 * CORES, f"CPU not saturated: {summary}"
    assert server_cores >= 0.75 * (CORES - others_cores), f"server not the load: {summary}"
    assert not any(stream.errors for stream in streams), [s.errors[:2] for s in streams]
    assert sum(stream.completed for stream in streams) >= STREAMS, summary
    # Each call burned what it asked for: the CPU went into /work, not somewhere else.
    assert all(stream.cpu_ms_used >= stream.completed * CPU_MS for stream in streams)
    print(summary)  # noqa: T201 - shown with -s: the numbers behind the thresholds
