"""Real `pleno serve` processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.process import LoggedProcess

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess(LoggedProcess):
    """One `python -m pleno serve` child process with its output captured to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env["PLENO_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        # SIGINT: the service's quick stop (no shutdown delay), as Ctrl-C in a terminal.
        super().__init__(
            [sys.executable, "-m", "pleno", "serve"], log_path, env=env, stop_signal=signal.SIGINT
        )

    def wait_ready(self, timeout: float = 15.0, path: str = "/ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.log}")

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


def server_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The parent's environment without PLENO_*, plus a free port, a temp SQLite and overrides."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PLENO_")}
    env.update(
        PLENO_PORT=str(free_port()),
        PLENO_DATABASE_URL=f"sqlite:///{tmp_path}/pleno.db",
        PLENO_SHUTDOWN_DELAY="0",
        PLENO_LOG_FORMAT="text",  # readable in failure output; tests that parse JSON ask for it
    )
    env.update(settings)
    return env


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with `start_server(**PLENO_settings)`; all are stopped at teardown."""
    started: list[ServerProcess] = []

    def start(**settings: str) -> ServerProcess:
        env = server_env(tmp_path, **settings)
        server = ServerProcess(env, tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
