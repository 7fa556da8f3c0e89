"""Short real Locust runs (loadtest/locustfile.py) against a real local `pleno serve`."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from loadtest.local import ROOT, locust_command

from tests.integration.conftest import ServerProcess

pytestmark = pytest.mark.integration

ROUTES = {
    ("GET", "/api/v1/items"),
    ("POST", "/api/v1/items"),
    ("GET", "/api/v1/items/{item_id}"),
    ("PATCH", "/api/v1/items/{item_id}"),
    ("GET", "/api/v1/work"),
    ("GET", "/api/v1/chain"),
}


def run_locust(
    url: str, out: Path, run_time: str, users: int = 4, **env: str
) -> subprocess.CompletedProcess[str]:
    command = locust_command(
        url, users, users, run_time, csv_prefix=out / "pleno", html=out / "report.html"
    )
    return subprocess.run(
        command,
        env={**os.environ, "LOAD_THINK_MIN": "0.05", "LOAD_THINK_MAX": "0.2", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stats_rows(out: Path) -> list[dict[str, str]]:
    with (out / "pleno_stats.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_short_run_has_no_failures_and_writes_the_reports(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    server.wait_ready()
    out = tmp_path / "loadtest"
    done = run_locust(
        server.url,
        out,
        "10s",
        LOAD_WORK_CPU_MS="5",
        LOAD_MAX_ERROR_RATIO="0",
        LOAD_MAX_P95_MS="5000",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "thresholds met" in done.stderr

    rows = stats_rows(out)
    aggregated = next(row for row in rows if row["Name"] == "Aggregated")
    assert int(aggregated["Failure Count"]) == 0
    assert int(aggregated["Request Count"]) > 20
    # Every task ran, and requests are grouped by route template: no raw ids in the names.
    assert {(row["Type"], row["Name"]) for row in rows if row["Name"] != "Aggregated"} == ROUTES
    assert (out / "pleno_failures.csv").read_text().count("\n") == 1  # the header alone
    assert (out / "pleno_stats_history.csv").stat().st_size > 0
    report = (out / "report.html").read_text()
    assert "<html" in report
    assert "/api/v1/items/{item_id}" in report

    # The server really saw the writes: the load test created items through the API.
    total = httpx.get(server.url + "/api/v1/items?limit=1").json()["total"]
    assert total >= 4  # at least one per user (on_start)


def test_a_breached_threshold_fails_the_run(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = start_server()
    server.wait_ready()
    # Only /work at 20 ms of CPU each: p95 cannot be under 5 ms.
    done = run_locust(
        server.url,
        tmp_path,
        "4s",
        users=2,
        LOAD_MIX="work=1",
        LOAD_WORK_CPU_MS="20",
        LOAD_MAX_ERROR_RATIO="0.5",
        LOAD_MAX_P95_MS="5",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"threshold breached: p95 \d+ ms > 5 ms", done.stderr), done.stderr
    names = {row["Name"] for row in stats_rows(tmp_path)}
    assert names == {"/api/v1/items", "/api/v1/work", "Aggregated"}  # on_start's create + work


def test_a_bad_mix_stops_locust_with_a_clear_message(tmp_path: Path) -> None:
    done = run_locust("http://127.0.0.1:9", tmp_path, "1s", LOAD_MIX="list=2,delete=1")
    assert done.returncode != 0
    assert "LOAD_MIX: 'delete=1' is not task=weight" in done.stderr


def test_make_load_runner_starts_and_stops_its_own_server(tmp_path: Path) -> None:
    """`make load` without LOAD_HOST: loadtest.run starts pleno, runs Locust, stops pleno."""
    out = tmp_path / "var-loadtest"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PLENO_", "LOAD_", "LOCUST_"))
    }
    env.update(LOAD_THINK_MIN="0.05", LOAD_THINK_MAX="0.2", LOAD_WORK_CPU_MS="5")
    env.update(LOAD_MAX_ERROR_RATIO="0", LOAD_MAX_P95_MS="5000")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.run",
            "--users=3",
            "--spawn-rate=3",
            "--run-time=5s",
            f"--out={out}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    started = re.search(r"started pleno serve on (http://127\.0\.0\.1:\d+)", done.stdout)
    assert started, done.stdout
    # Live progress: Locust's periodic stats table went to the terminal during the run.
    assert done.stdout.count("Aggregated") >= 2 or done.stderr.count("Aggregated") >= 2
    assert (out / "report.html").exists()
    assert (out / "pleno_stats.csv").exists()
    assert "http.route" in (out / "server" / "server.log").read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(started.group(1) + "/health", timeout=2)
