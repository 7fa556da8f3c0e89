"""Drive load with wrk and read its results (bench/wrk.lua prints them as one JSON line)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
_RESULT_PREFIX = "BENCH_WRK "
_LIMIT_MARKER = "BENCH_LIMIT_REACHED"


class LoadError(RuntimeError):
    """wrk failed or printed no result."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    socket_errors: int  # connect + read + write + timeout
    non_2xx: int  # responses outside 2xx/3xx

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def wrk_command(
    url: str, *, duration_s: float, connections: int, cpu: int | None, latency: bool = True
) -> list[str]:
    """The exact command line, also printed in the report so a run can be reproduced by hand."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    flags = ["-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s"]
    if latency:
        flags.append("--latency")
    return [*pin, "wrk", *flags, "-s", str(WRK_SCRIPT), url]


def run_for(url: str, *, duration_s: float, connections: int, cpu: int | None) -> WrkResult:
    """Closed-loop load for a fixed time: `connections` keep-alive connections, one thread."""
    command = wrk_command(url, duration_s=duration_s, connections=connections, cpu=cpu)
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv built above, no shell
            command, capture_output=True, text=True, timeout=duration_s + 60, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise LoadError(f"wrk did not finish: {' '.join(command)}") from error
    return _parse(done.stdout, done.stderr, done.returncode)


def run_count(url: str, *, requests: int, connections: int, cpu: int | None) -> WrkResult:
    """Exactly `requests` responses, then stop (used before reading a server's RSS)."""
    # -d is only an upper bound: wrk.lua prints a marker after the last response, and SIGINT
    # makes wrk stop sleeping and report at once.
    command = wrk_command(url, duration_s=600, connections=connections, cpu=cpu, latency=False)
    env = {**os.environ, "BENCH_MAX_REQUESTS": str(requests)}
    with subprocess.Popen(  # noqa: S603 - fixed argv built above, no shell
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as wrk:
        assert wrk.stdout is not None  # noqa: S101 - guaranteed by stdout=PIPE
        assert wrk.stderr is not None  # noqa: S101
        watchdog = threading.Timer(300, wrk.kill)  # a wedged server must not hang the bench
        watchdog.start()
        lines: list[str] = []
        try:
            for line in wrk.stdout:
                lines.append(line)
                if line.strip() == _LIMIT_MARKER:
                    wrk.send_signal(signal.SIGINT)
            stderr = wrk.stderr.read()
            returncode = wrk.wait()
        finally:
            watchdog.cancel()
    return _parse("".join(lines), stderr, returncode)


def _parse(stdout: str, stderr: str, returncode: int) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(_RESULT_PREFIX):
            data = json.loads(line.removeprefix(_RESULT_PREFIX))
            errors: dict[str, int] = data["errors"]
            latency: dict[str, float] = data["latency_us"]
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=int(data["duration_us"]) / 1e6,
                p50_ms=latency["p50"] / 1000,
                p99_ms=latency["p99"] / 1000,
                socket_errors=sum(errors[k] for k in ("connect", "read", "write", "timeout")),
                non_2xx=int(errors["status"]),
            )
    detail = (stderr or stdout).strip()[-500:]
    raise LoadError(f"wrk exited {returncode} without a result: {detail}")
