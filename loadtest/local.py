"""A local `pleno serve` child process for `make load` and `make capacity`, and Locust runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")


def free_port() -> int:
    """A port the OS says is free on loopback (other runs may be using any fixed one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def venv_tool(name: str) -> str:
    """A console script installed next to this interpreter (the project venv's locust)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise FileNotFoundError(f"{name} not found next to {sys.executable}: run `make venv`")
    return str(path)


class LocalPleno:
    """`python -m pleno serve` on a free loopback port with its own SQLite file.

    Its log goes to a file, not the terminal, so Locust's live progress stays readable. Used as a
    context manager: the server is stopped (SIGINT: no shutdown delay) however the block ends.
    """

    def __init__(self, workdir: Path, **settings: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        database = workdir / "pleno.db"
        database.unlink(missing_ok=True)  # every run starts from an empty database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("PLENO_")}
        env = {key: value for key, value in env.items() if not key.startswith("OTEL_")}
        env.update(
            PLENO_HOST="127.0.0.1",
            PLENO_PORT=str(self.port),
            PLENO_DATABASE_URL=f"sqlite:///{database}",
            PLENO_LOG_FORMAT="json",  # what production writes, so its cost is measured too
            PLENO_SHUTDOWN_DELAY="0",
        )
        env.update(settings)
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalPleno:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pleno", "serve"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("server not started")
        return self.process.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"pleno serve exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pleno serve not ready after {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def locust_command(
    host: str,
    users: int,
    spawn_rate: float,
    run_time: str,
    *,
    csv_prefix: Path | None = None,
    html: Path | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The headless Locust command line every local run uses."""
    command = [
        venv_tool("locust"),
        f"--locustfile={LOCUSTFILE}",
        "--headless",
        f"--host={host}",
        f"--users={users}",
        f"--spawn-rate={spawn_rate}",
        f"--run-time={run_time}",
        # Let in-flight requests finish at the end, so they count instead of erroring out.
        "--stop-timeout=5",
    ]
    if csv_prefix is not None:
        command.append(f"--csv={csv_prefix}")
    if html is not None:
        command.append(f"--html={html}")
    command.extend(extra)
    return command


def run_locust(command: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run Locust in the foreground (its live stats go to this terminal); return its exit code."""
    merged = dict(os.environ)
    if env:
        merged.update(env)
    return subprocess.run(command, env=merged, check=False).returncode  # noqa: S603
