"""Where the time goes: CPU per request of each layer, measured in-process.

wrk measures the whole server, so its ratios say how much slower Pleno is, not why. This drives
the ASGI apps directly (no socket, no uvicorn, no HTTP parsing: the same for every app) with
`GET /version`, and reads the process's CPU time, export threads included. Each row adds or
removes one thing, so the differences between rows are the cost of each layer and of each
part of the "telemetry off" app. The apps are measured in interleaved rounds in one process,
and each row is the median over rounds.

Run on its own: ``python -m bench.attribution --sink-port PORT --out result.json`` (an OTLP
sink must listen on PORT: ``python -m bench.otlp_sink --port PORT``). `make bench` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

PATH = "/version"
ROUNDS = 7
REQUESTS = 4000
WARMUP = 500

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    compare_to: str | None  # the row this one differs from by exactly one thing
    cpu_us: float = 0.0  # median CPU microseconds per request
    spread_us: float = 0.0  # max - min over rounds


ROWS = (
    Row("bare", "bare FastAPI", None),
    Row("off", "Pleno, telemetry off", "bare"),
    Row("off_route_first", "  off, /version moved to the front of the route list", "off"),
    Row("off_no_telemetry_mw", "  off, without TelemetryMiddleware", "off"),
    Row("off_no_body_limit", "  off, without BodyLimitMiddleware", "off"),
    Row("metrics", "Pleno, metrics", "off"),
    Row("metrics_logs", "Pleno, metrics + logs", "metrics"),
    Row("traces_0", "Pleno, metrics + logs + traces 0% (no request sampled)", "metrics_logs"),
    Row("traces_10", "Pleno, metrics + logs + traces 10%", "metrics_logs"),
    Row("traces_100", "Pleno, metrics + logs + traces 100%", "metrics_logs"),
)


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"attribution")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"GET {PATH} answered {message['status']}")


async def _requests(app: App, count: int) -> None:
    for _ in range(count):
        await app(_scope(), _receive, _send)


async def _start(app: FastAPI) -> None:
    """Run the app's lifespan startup (it then stays up until the process exits)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))  # type: ignore[arg-type]
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {started}")
    _running.append(task)


_running: list[asyncio.Task[None]] = []


_SAMPLING = {"traces_0": 0.0, "traces_10": 0.1, "traces_100": 1.0}


def _pleno(database: Path, sink_port: int, key: str) -> FastAPI:
    from pleno.app import create_app  # noqa: PLC0415 - after logging is configured
    from pleno.settings import Settings  # noqa: PLC0415

    switches: dict[str, Any] = {"metrics_enabled": False, "access_log_enabled": False}
    if key.startswith(("metrics", "traces")):
        switches = {"metrics_enabled": True, "access_log_enabled": key != "metrics"}
    if key.startswith("traces"):
        switches |= {
            "otel_exporter_otlp_endpoint": f"http://127.0.0.1:{sink_port}",
            "otel_traces_sampler": "parentbased_traceidratio",
            "otel_traces_sampler_arg": _SAMPLING[key],
        }
    settings = Settings(database_url=f"sqlite:///{database}", log_format="json", **switches)
    app = create_app(settings)
    if key == "off_no_telemetry_mw":
        _drop_middleware(app, "TelemetryMiddleware")
    if key == "off_no_body_limit":
        _drop_middleware(app, "BodyLimitMiddleware")
    if key == "off_route_first":
        route = next(r for r in app.router.routes if getattr(r, "path", None) == PATH)
        app.router.routes.remove(route)
        app.router.routes.insert(0, route)
    return app


def _drop_middleware(app: FastAPI, name: str) -> None:
    # The stack is built on the first call, so removing the entry before that removes the layer.
    app.user_middleware = [m for m in app.user_middleware if getattr(m.cls, "__name__", "") != name]


async def _measure(app: FastAPI, requests: int) -> float:
    """CPU microseconds per request, including the span export those requests caused."""
    tracing = getattr(app.state, "tracing", None)  # bare FastAPI has none
    gc.collect()  # start each sample from the same heap: no row pays for another's garbage
    begin = time.process_time()
    await _requests(app, requests)
    if tracing is not None:
        tracing.provider.force_flush()
    return (time.process_time() - begin) / requests * 1e6


async def attribute(sink_port: int, rounds: int, requests: int) -> list[Row]:
    from bench.bare_app import app as bare  # noqa: PLC0415
    from pleno import __version__  # noqa: PLC0415
    from pleno.observability.logging import configure_logging  # noqa: PLC0415
    from pleno.settings import Settings  # noqa: PLC0415

    configure_logging(Settings(log_format="json"), __version__)
    apps: dict[str, FastAPI] = {}
    with tempfile.TemporaryDirectory(prefix="pleno-attribution-") as tmp:
        for row in ROWS:
            if row.key == "bare":
                app = bare
            else:
                app = _pleno(Path(tmp) / f"{row.key}.db", sink_port, row.key)
                await _start(app)
            await _requests(app, WARMUP)
            apps[row.key] = app
        gc.freeze()  # as `pleno serve` does after startup (pleno.server)
        samples: dict[str, list[float]] = {row.key: [] for row in ROWS}
        for _ in range(rounds):
            for row in ROWS:
                samples[row.key].append(await _measure(apps[row.key], requests))
    return [
        Row(
            row.key,
            row.label,
            row.compare_to,
            statistics.median(samples[row.key]),
            max(samples[row.key]) - min(samples[row.key]),
        )
        for row in ROWS
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sink-port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    args = parser.parse_args()
    rows = asyncio.run(attribute(args.sink_port, args.rounds, args.requests))
    args.out.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    for row in rows:
        sys.stderr.write(f"{row.label:55s} {row.cpu_us:7.1f} µs\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
