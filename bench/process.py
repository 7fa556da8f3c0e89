"""Start, probe and stop the servers under test, each pinned to the server core."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

READY_POLL_S = 0.010  # how finely start-to-ready is resolved
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class ServerError(RuntimeError):
    """A server did not start, or died under load."""


def free_port() -> int:
    # The port is released before the server binds it; on a quiet loopback nobody takes it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environment(pycache: Path) -> dict[str, str]:
    """This process's environment without any setting that could change what is measured.

    Bytecode is cached under `pycache` (not next to the sources) even when the caller's shell
    sets PYTHONDONTWRITEBYTECODE: otherwise every start would recompile Pleno's own modules,
    which an image with compiled bytecode never does, and start-to-ready would measure that.
    """
    prefixes = (
        "PLENO_",
        "OTEL_",
        "FASTAPI_OTEL_",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONPYCACHEPREFIX",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, "PYTHONPYCACHEPREFIX": str(pycache)}


def pinned(command: list[str], cpu: int | None) -> list[str]:
    # taskset execs the command, so the pid we get is the server's own: /proc/<pid> is its RSS.
    return ["taskset", "-c", str(cpu), *command] if cpu is not None else command


class Server:
    """One server process; stdout and stderr go to `log_path` (see run.py for why a file)."""

    def __init__(
        self,
        command: list[str],
        *,
        env: dict[str, str],
        port: int,
        log_path: Path,
        ready_path: str = "/ready",
    ):
        self.command = command
        self.port = port
        self.log_path = log_path
        self.ready_path = ready_path
        self._env = env
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._spawned_at = 0.0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError("server not started")
        return self._process.pid

    def start(self) -> float:
        """Spawn, then wait for the first 200 from the ready path; return the seconds it took."""
        self._log = self.log_path.open("wb")
        self._spawned_at = time.monotonic()
        self._process = subprocess.Popen(  # noqa: S603 - argv built by the harness, no shell
            self.command, env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self._wait_ready()

    def _wait_ready(self) -> float:
        deadline = self._spawned_at + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ServerError(f"exited with {self._process.returncode}: {self.log_tail()}")
            if self._ready():
                return time.monotonic() - self._spawned_at
            time.sleep(READY_POLL_S)
        raise ServerError(f"not ready after {READY_TIMEOUT_S:.0f}s: {self.log_tail()}")

    def _ready(self) -> bool:
        # A fresh connection per poll: a refused connect returns in microseconds.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", self.ready_path)
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def check_alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            code = None if self._process is None else self._process.returncode
            raise ServerError(f"died (exit {code}): {self.log_tail()}")

    def rss_mib(self) -> float:
        """Resident set size now, from the kernel's own accounting of the process."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # the line reads "VmRSS:  51234 kB"
        raise ServerError("no VmRSS in /proc/<pid>/status")

    def stop(self) -> int | None:
        """SIGTERM (the graceful path, which flushes telemetry), then SIGKILL if it hangs."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_tail(self, limit: int = 1500) -> str:
        with contextlib.suppress(OSError):
            if self._log is not None:
                self._log.flush()
            data = self.log_path.read_bytes()[-limit:]
            return data.decode(errors="replace").strip() or "(no output)"
        return "(no output)"


def get_json(port: int, path: str) -> dict[str, int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        if response.status != 200:
            raise ServerError(f"GET {path} answered {response.status}")
        data: dict[str, int] = json.loads(response.read())
        return data
    finally:
        connection.close()
