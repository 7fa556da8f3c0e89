"""A PostgreSQL outage against a real, throwaway cluster that the tests stop, start and freeze.

Acceptance: with the database down or hanging, the API answers 503 problem+json within a
bounded time (never 500), /ready is 503 and names the failing check, /health stays 200, the
process stays up, and the service recovers on its own once the database is back.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import ServerProcess, free_port

pytestmark = pytest.mark.integration

DB_TIMEOUT_S = 1.0  # PLENO_DB_TIMEOUT for these tests
READY_TIMEOUT_S = 1.0  # PLENO_READY_TIMEOUT (the default)
# Refused connections fail at once; a hung database costs at most a pool-checkout ping and a
# fresh connect, each bounded by DB_TIMEOUT_S. The rest is slack for a loaded CI machine.
REFUSED_BOUND_S = DB_TIMEOUT_S + 2.0
HUNG_BOUND_S = 2 * DB_TIMEOUT_S + 2.0
READY_BOUND_S = READY_TIMEOUT_S + 2.0
RECOVERY_BOUND_S = 10.0
CLIENT_TIMEOUT_S = 10.0  # far above every bound: reaching it means an unbounded wait


class ThrowawayPostgres:
    """A private PostgreSQL cluster on 127.0.0.1:<free port>, run as the `postgres` OS user.

    Only this cluster's processes are ever signalled: they are found from its own
    postmaster.pid, never by name, so the machine's main PostgreSQL is left alone.
    """

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._frozen: list[int] = []

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = ["runuser", "-u", "postgres", "--", *args]
        result = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            output = f"{result.stdout}\n{result.stderr}\nserver log:\n{self.log_tail()}"
            raise RuntimeError(f"{' '.join(args)} failed:\n{output}")

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "--pgdata",
            str(self.datadir),
            "--username=postgres",
            "--auth=trust",
            "--no-sync",
            "--no-instructions",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # Throwaway data: skip fsync for speed. synchronous_commit stays on, so a commit is in
            # the kernel before the client hears of it and survives an immediate (crash) stop.
            "fsync": "off",
            "full_page_writes": "off",
        }
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "--wait",
            "--timeout=30",
            "--pgdata",
            str(self.datadir),
            "--log",
            str(self.root / "postgres.log"),
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(self.bindir / "pg_ctl"),
            "stop",
            "--wait",
            "--mode",
            mode,
            "--pgdata",
            str(self.datadir),
        )

    def is_running(self) -> bool:
        return self._postmaster_pid() is not None

    def _postmaster_pid(self) -> int | None:
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        # Guard against a recycled pid: the process must be a postgres for this data directory.
        return pid if str(self.datadir).encode() in cmdline else None

    def _children(self, parent: int) -> list[int]:
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The command name is in parentheses and may hold spaces: split after it.
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                children.append(int(stat.parent.name))
        return children

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the postmaster and every backend: connections hang instead of failing."""
        postmaster = self._postmaster_pid()
        assert postmaster is not None, "the throwaway cluster is not running"
        try:
            # The postmaster first, so it forks no new backend while the children are listed.
            self._signal(postmaster, signal.SIGSTOP)
            for child in self._children(postmaster):
                self._signal(child, signal.SIGSTOP)
            yield
        finally:
            self.thaw()

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGSTOP:
            self._frozen.append(pid)

    def thaw(self) -> None:
        while self._frozen:
            with suppress(ProcessLookupError):
                os.kill(self._frozen.pop(), signal.SIGCONT)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "postgres.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""


def _postgres_bindir() -> Path:
    if os.geteuid() != 0:
        pytest.skip("the throwaway PostgreSQL is run as the `postgres` user, which needs root")
    if shutil.which("runuser") is None:
        pytest.skip("runuser is missing: cannot run initdb as the `postgres` user")
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        pytest.skip("initdb not found under /usr/lib/postgresql/*/bin: install postgresql")
    try:
        subprocess.run(["id", "postgres"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("there is no `postgres` OS user to run the throwaway cluster")
    return Path(candidates[0]).parent


@pytest.fixture(scope="module")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """One cluster for the module (initdb takes seconds); always stopped and removed."""
    bindir = _postgres_bindir()
    root = Path(tempfile.mkdtemp(prefix="pleno-pg-", dir="/tmp"))
    shutil.chown(root, user="postgres", group="postgres")
    cluster = ThrowawayPostgres(bindir, root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.thaw()
        if cluster.is_running():
            cluster.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres(throwaway_postgres: ThrowawayPostgres) -> ThrowawayPostgres:
    """The module's cluster, running and unfrozen whatever the previous test left."""
    throwaway_postgres.thaw()
    if not throwaway_postgres.is_running():
        throwaway_postgres.start()
    return throwaway_postgres


@pytest.fixture
def server(
    postgres: ThrowawayPostgres, start_server: Callable[..., ServerProcess]
) -> ServerProcess:
    process = start_server(
        PLENO_DATABASE_URL=postgres.url,
        PLENO_MIGRATE_ON_START="true",
        PLENO_DB_TIMEOUT=str(DB_TIMEOUT_S),
        PLENO_READY_TIMEOUT=str(READY_TIMEOUT_S),
    )
    process.wait_ready()
    return process


def timed(
    client: httpx.Client, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TimeoutException:
        pytest.fail(f"{method} {path}: no answer within {CLIENT_TIMEOUT_S}s: the wait is unbounded")
    return response, time.monotonic() - started


def create_item(client: httpx.Client) -> httpx.Response:
    return client.post("/api/v1/items", json={"name": f"item-{uuid.uuid4().hex}", "quantity": 3})


def assert_unavailable(response: httpx.Response, elapsed: float, bound: float) -> None:
    context = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == 503, f"{context}: {response.status_code} {response.text}"
    assert elapsed < bound, f"{context}: 503 took {elapsed:.2f}s, bound {bound}s"
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503
    assert "database is unavailable" in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text


def assert_not_ready(response: httpx.Response, elapsed: float) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert elapsed < READY_BOUND_S, f"/ready took {elapsed:.2f}s, bound {READY_BOUND_S}s"
    body: dict[str, Any] = response.json()
    assert body["status"] == "unavailable"
    database = body["checks"]["database"]
    assert database["ok"] is False
    assert database["reason"], body
    # Only the database is failing: the other checks stay green.
    assert all(check["ok"] for name, check in body["checks"].items() if name != "database")
    return body


def poll_until_recovered(client: httpx.Client, item_id: int) -> float:
    """Seconds until the API serves the item again; fails after RECOVERY_BOUND_S."""
    started = time.monotonic()
    statuses: list[int] = []
    while time.monotonic() - started < RECOVERY_BOUND_S:
        status = client.get(f"/api/v1/items/{item_id}").status_code
        statuses.append(status)
        assert status in {200, 503}, f"during recovery: {statuses}"
        if status == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"no recovery within {RECOVERY_BOUND_S}s: {statuses}")


def assert_healthy_again(client: httpx.Client, item_id: int) -> None:
    assert client.get(f"/api/v1/items/{item_id}").json()["quantity"] == 3
    assert create_item(client).status_code == 201
    assert client.get("/api/v1/items").status_code == 200
    assert client.get("/ready").status_code == 200


def test_database_stopped_then_restarted(
    server: ServerProcess, postgres: ThrowawayPostgres
) -> None:
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
        # a. Healthy.
        created = create_item(client)
        assert created.status_code == 201, created.text
        item_id = created.json()["id"]
        assert client.get("/ready").status_code == 200

        # b. Stopped: connections are refused or reset.
        postgres.stop(mode="fast")
        for method, path, kwargs in [
            ("GET", f"/api/v1/items/{item_id}", {}),  # first use of a pooled, now dead socket
            ("POST", "/api/v1/items", {"json": {"name": "during-outage"}}),
            ("GET", "/api/v1/items", {}),
            ("GET", f"/api/v1/items/{item_id}", {}),
        ]:
            response, elapsed = timed(client, method, path, **kwargs)
            assert_unavailable(response, elapsed, REFUSED_BOUND_S)
        response, elapsed = timed(client, "GET", "/ready")
        assert_not_ready(response, elapsed)
        assert client.get("/health").json() == {"status": "ok"}
        assert server.process.poll() is None, server.log

        # c. Started again: recovery without restarting pleno, data intact.
        postgres.start()
        poll_until_recovered(client, item_id)
        assert_healthy_again(client, item_id)
    assert server.process.poll() is None
    assert "Traceback" not in server.log, server.log


def test_database_hanging_then_resumed(server: ServerProcess, postgres: ThrowawayPostgres) -> None:
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
        created = create_item(client)
        assert created.status_code == 201, created.text
        item_id = created.json()["id"]
        assert client.get("/ready").status_code == 200

        # d. Hanging: the database accepts TCP connections but never answers.
        with postgres.frozen():
            for method, path, kwargs in [
                ("GET", f"/api/v1/items/{item_id}", {}),  # the pooled socket: ping times out
                ("POST", "/api/v1/items", {"json": {"name": "during-hang"}}),
                ("GET", "/api/v1/items", {}),
                ("GET", f"/api/v1/items/{item_id}", {}),
            ]:
                response, elapsed = timed(client, method, path, **kwargs)
                assert_unavailable(response, elapsed, HUNG_BOUND_S)
            response, elapsed = timed(client, "GET", "/ready")
            body = assert_not_ready(response, elapsed)
            assert body["checks"]["database"]["reason"] == f"no answer within {READY_TIMEOUT_S:g}s"
            assert client.get("/health").json() == {"status": "ok"}
            assert server.process.poll() is None, server.log

        poll_until_recovered(client, item_id)
        assert_healthy_again(client, item_id)
    assert server.process.poll() is None
    assert "Traceback" not in server.log, server.log


def test_quick_restart_is_invisible(server: ServerProcess, postgres: ThrowawayPostgres) -> None:
    """Pooled sockets die with the database; pre-ping replaces them, so no request fails."""
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT_S) as client:
        item_id = create_item(client).json()["id"]

        def get_item(_: int) -> int:
            return client.get(f"/api/v1/items/{item_id}").status_code

        with ThreadPoolExecutor(max_workers=10) as pool:
            # Concurrent requests leave several connections in the pool.
            assert set(pool.map(get_item, range(20))) == {200}
            postgres.stop(mode="immediate")  # as after a crash: no goodbye to the clients
            postgres.start()
            assert list(pool.map(get_item, range(20))) == [200] * 20
    assert server.process.poll() is None
