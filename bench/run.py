"""`make bench`: bare FastAPI, Pleno at each telemetry level, the off-the-shelf anchor and the
issue's lean reference design, measured side by side in one run. See report.py for what is
printed and docs/benchmarks.md for a published run.

A benchmark, not a test: it exits 0 whether or not the budgets hold, and says which failed.
It exits 1 only when the baseline could not be measured, 2 on a setup problem.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from bench import loadgen, machine
from bench.model import (
    PLENO_DEFAULT,
    START_VARIANTS,
    Config,
    Sample,
    StartResult,
    Variant,
    VariantResult,
)
from bench.process import Server, ServerError, clean_environment, free_port, get_json, pinned
from bench.report import Run, failed_budgets, render

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "var" / "bench"
PUBLISHED = REPO / "docs" / "benchmarks.md"
PATH = "/version"  # the measured endpoint
LOG_SAMPLE_LINES = 20


@dataclasses.dataclass(frozen=True)
class Context:
    config: Config
    workdir: Path  # the run's temporary directory: database, server output
    sink_port: int

    @property
    def database(self) -> Path:
        return self.workdir / "pleno.db"


def server_spec(
    variant: Variant, *, port: int, database: Path, sink_port: int
) -> tuple[dict[str, str], list[str]]:
    """The environment additions and argv that run `variant` (unpinned)."""
    python = _shown_python()
    env: dict[str, str] = {}
    if variant.kind == "pleno":
        env |= {
            "PLENO_HOST": "127.0.0.1",
            "PLENO_PORT": str(port),
            "PLENO_DATABASE_URL": f"sqlite:///{database}",
            "PLENO_LOG_LEVEL": "info",
            # Stop at once on SIGTERM: there is no load balancer to wait for.
            "PLENO_SHUTDOWN_DELAY": "0",
        }
        if variant.switches:  # the "default settings" start variant sets none
            env |= {"PLENO_LOG_FORMAT": "json", **variant.switches}
        argv = [python, "-m", "pleno", "serve"]
    else:
        argv = [python, "-m", f"bench.{variant.kind}_app", "--port", str(port)]
    if variant.sampling is not None:
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": f"{variant.sampling:g}",
        }
        if variant.kind != "pleno":
            env["OTEL_SERVICE_NAME"] = variant.kind
    return env, argv


def make_server(variant: Variant, ctx: Context, log_path: Path) -> Server:
    port = free_port()
    extra, argv = server_spec(variant, port=port, database=ctx.database, sink_port=ctx.sink_port)
    return Server(
        pinned(argv, ctx.config.server_cpu),
        env={**clean_environment(OUT / "pycache"), **extra},
        port=port,
        log_path=log_path,
    )


def measure(variant: Variant, first_round: bool, ctx: Context) -> Sample:
    """One fresh server: start, warm up, measure, stop.

    In the first round the warm-up is exactly `rss_requests` requests, after which the RSS is read.
    """
    cfg = ctx.config
    log_path = ctx.workdir / f"{variant.key}.log"
    before = get_json(ctx.sink_port, "/stats")
    served = 0
    rss_after_load = None
    with make_server(variant, ctx, log_path) as server:
        start_s = server.start()
        url = f"http://127.0.0.1:{server.port}{PATH}"
        if first_round:
            counted = loadgen.run_count(
                url, requests=cfg.rss_requests, connections=cfg.connections, cpu=cfg.client_cpu
            )
            served += counted.requests
            server.check_alive()
            rss_after_load = server.rss_mib()
        elif cfg.warmup_s > 0:  # in the first round, the counted requests are the warm-up
            warm = loadgen.run_for(
                url, duration_s=cfg.warmup_s, connections=cfg.connections, cpu=cfg.client_cpu
            )
            served += warm.requests
        result = loadgen.run_for(
            url, duration_s=cfg.duration_s, connections=cfg.connections, cpu=cfg.client_cpu
        )
        served += result.requests
        server.check_alive()
        rss_end = server.rss_mib()
    # Stopped: a graceful exit has flushed the exporter, so every span of this lifetime is in.
    after = get_json(ctx.sink_port, "/stats")
    log_lines = _count_and_sample_log(log_path, OUT / "logs" / f"{variant.key}.log", first_round)
    return Sample(
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        requests_served=served,
        start_s=start_s,
        rss_end_mib=rss_end,
        rss_after_load_mib=rss_after_load,
        spans=after["spans"] - before["spans"],
        server_spans=after["server_spans"] - before["server_spans"],
        log_lines=log_lines,
        errors=result.socket_errors + result.non_2xx,
    )


def _count_and_sample_log(log_path: Path, sample_path: Path, keep_sample: bool) -> int:
    """Count output lines that mention the endpoint, keep the first lines, delete the file."""
    count = 0
    head: list[bytes] = []
    with log_path.open("rb") as log:
        for line in log:
            if len(head) < LOG_SAMPLE_LINES:
                head.append(line)
            if PATH.encode() in line:
                count += 1
    if keep_sample:
        sample_path.parent.mkdir(parents=True, exist_ok=True)
        sample_path.write_bytes(b"".join(head))
    log_path.unlink()  # a 10 s run at full logging writes tens of MB
    return count


def time_starts(variant: Variant, ctx: Context) -> float:
    with make_server(variant, ctx, ctx.workdir / f"start-{variant.key}.log") as server:
        return server.start()


def run_rounds(ctx: Context) -> list[VariantResult]:
    cfg = ctx.config
    results = [VariantResult(v) for v in cfg.variants]
    for round_index in range(cfg.rounds):
        for result in results:  # interleaved: drift hits every variant alike
            label = f"[round {round_index + 1}/{cfg.rounds}] {result.variant.label}"
            try:
                sample = measure(result.variant, round_index == 0, ctx)
            except (ServerError, loadgen.LoadError, OSError) as error:
                result.failures.append(f"round {round_index + 1}: {error}")
                _progress(f"{label}: FAILED: {error}")
                continue
            result.samples.append(sample)
            _progress(
                f"{label}: {sample.rps:,.0f} req/s, p50 {sample.p50_ms:.2f} ms, "
                f"p99 {sample.p99_ms:.2f} ms, ready in {sample.start_s:.2f} s"
                + (f", {sample.errors} errors" if sample.errors else "")
            )
    return results


def run_attribution(ctx: Context, notes: list[str]) -> list[dict[str, object]]:
    """bench/attribution.py in a process of its own, on the server core."""
    out = ctx.workdir / "attribution.json"
    argv = [sys.executable, "-m", "bench.attribution", "--sink-port", str(ctx.sink_port)]
    with (ctx.workdir / "attribution.log").open("wb") as log:
        done = subprocess.run(  # noqa: S603 - argv built here, no shell
            pinned([*argv, "--out", str(out)], ctx.config.server_cpu),
            env=clean_environment(OUT / "pycache"),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        notes.append(f"The attribution run failed: {done.stderr[-500:]}")
        return []
    _progress(f"[where the time goes]\n{done.stderr.strip()}")
    rows: list[dict[str, object]] = json.loads(out.read_text())
    return rows


def run_starts(ctx: Context) -> list[StartResult]:
    starts = [StartResult(v) for v in START_VARIANTS]
    for _ in range(ctx.config.starts):
        for start in starts:
            try:
                start.seconds.append(time_starts(start.variant, ctx))
            except (ServerError, OSError) as error:
                start.failures.append(str(error))
    for start in starts:
        _progress(f"[start to ready] {start.variant.label}: {start.seconds}")
    return starts


def migrate(ctx: Context) -> str | None:
    """Migrate the run's database once, so no measured start pays for creating the tables."""
    # The port is required by the settings but unused: migrate binds nothing.
    extra, _ = server_spec(PLENO_DEFAULT, port=8000, database=ctx.database, sink_port=0)
    done = subprocess.run(
        [sys.executable, "-m", "pleno", "migrate"],
        env={**clean_environment(OUT / "pycache"), **extra},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        return f"pleno migrate exited {done.returncode}: {(done.stderr or done.stdout)[-500:]}"
    return None


def commands(ctx: Context) -> list[tuple[str, str]]:
    """Copy-pasteable commands, with example ports and paths in place of this run's."""
    cfg = ctx.config
    example_db = Path("/tmp/pleno-bench/pleno.db")  # noqa: S108 - an example path, not used
    shown: list[tuple[str, str]] = [
        ("OTLP sink (on the client CPU)", _shell({}, pinned(_sink_argv(4318), cfg.client_cpu)))
    ]
    for variant in (*cfg.variants, PLENO_DEFAULT):
        extra, argv = server_spec(variant, port=8000, database=example_db, sink_port=4318)
        shown.append((variant.label, _shell(extra, pinned(argv, cfg.server_cpu))))
    url = f"http://127.0.0.1:8000{PATH}"
    rss = loadgen.wrk_command(
        url, duration_s=600, connections=cfg.connections, cpu=cfg.client_cpu, latency=False
    )
    shown.append(
        (
            f"first round only: exactly {cfg.rss_requests:,} requests, then read VmRSS "
            "(send SIGINT to wrk when it prints BENCH_LIMIT_REACHED)",
            _shell({"BENCH_MAX_REQUESTS": str(cfg.rss_requests)}, rss),
        )
    )
    for what, seconds in (("warm-up", cfg.warmup_s), ("measurement", cfg.duration_s)):
        line = loadgen.wrk_command(
            url, duration_s=seconds, connections=cfg.connections, cpu=cfg.client_cpu
        )
        shown.append((what, _shell({}, line)))
    return shown


def _sink_argv(port: int) -> list[str]:
    return [_shown_python(), "-m", "bench.otlp_sink", "--port", str(port)]


def _shown_python() -> str:
    # Relative when it is the project's venv: the commands in the report then work anywhere.
    python = Path(sys.executable)
    try:
        return str(python.relative_to(REPO))
    except ValueError:
        return str(python)


def _shell(env: Mapping[str, str], argv: list[str]) -> str:
    shown = [str(Path(a).relative_to(REPO)) if a.startswith(f"{REPO}/") else a for a in argv]
    prefix = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    return " ".join([*prefix, shlex.join(shown)])


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _pinning(config: Config) -> tuple[Config, str | None]:
    """Pin this process to the client CPU, or fall back to no pinning and say so."""
    cpus = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") and len(cpus) >= 2:
        server_cpu, client_cpu = cpus[0], cpus[1]
        # Children inherit this; the servers are moved to their own CPU with taskset.
        os.sched_setaffinity(0, {client_cpu})
        return dataclasses.replace(config, server_cpu=server_cpu, client_cpu=client_cpu), None
    note = "Not pinned: needs taskset (util-linux) and two CPUs; numbers are not comparable."
    return dataclasses.replace(config, server_cpu=None, client_cpu=None), note


def main() -> int:
    try:
        config = Config.from_environment()
    except ValueError as error:
        _progress(f"bench: {error}")
        return 2
    if shutil.which("wrk") is None:
        _progress("bench: wrk not found; install it with `apt-get install wrk`")
        return 2
    config, pin_note = _pinning(config)
    notes = [pin_note] if pin_note else []
    OUT.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    clock = time.monotonic()
    load_before = machine.load_average()
    described = machine.describe(REPO)

    with tempfile.TemporaryDirectory(prefix="pleno-bench-") as tmp:
        workdir = Path(tmp)
        sink_port = free_port()
        sink = Server(
            pinned(_sink_argv(sink_port), config.client_cpu),
            env=clean_environment(OUT / "pycache"),
            port=sink_port,
            log_path=workdir / "sink.log",
            ready_path="/stats",
        )
        with sink:
            sink.start()
            ctx = Context(config=config, workdir=workdir, sink_port=sink_port)
            if problem := migrate(ctx):
                notes.append(problem)
            results = run_rounds(ctx)
            starts = run_starts(ctx)
            attribution = run_attribution(ctx, notes)
            sink_totals = get_json(sink_port, "/stats")
    if sink_totals.get("bad_requests"):
        notes.append(f"The OTLP sink rejected {sink_totals['bad_requests']} malformed exports.")

    run = Run(
        config=config,
        machine=described,
        started=started,
        elapsed_s=time.monotonic() - clock,
        load_before=load_before,
        load_after=machine.load_average(),
        results=results,
        starts=starts,
        commands=commands(ctx),
        notes=notes,
        attribution=attribution,
    )
    report = render(run)
    sys.stdout.write(report)
    (OUT / "report.md").write_text(report)
    (OUT / "results.json").write_text(
        json.dumps(
            {
                "run": started,
                "config": dataclasses.asdict(config),
                "machine": dataclasses.asdict(described),
                "results": [dataclasses.asdict(r) for r in results],
                "starts": [dataclasses.asdict(s) for s in starts],
            },
            indent=2,
            default=str,
        )
    )
    _progress(f"bench: report written to {(OUT / 'report.md').relative_to(REPO)}")
    if config.publish:
        PUBLISHED.write_text(report)
        _progress(f"bench: published to {PUBLISHED.relative_to(REPO)}")
    if failed := failed_budgets(run):
        _progress("bench: budgets FAILED: " + "; ".join(f"{b.name} ({b.measured})" for b in failed))
    bare = run.results[0]
    return 0 if bare.samples else 1


if __name__ == "__main__":
    sys.exit(main())
