"""Turn one run's measurements into the Markdown report (printed, saved, optionally published)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.machine import Machine
from bench.model import (
    BARE,
    LEAN,
    METRICS_LOGS,
    TRACES_10,
    TRACES_100,
    VARIANTS,
    Config,
    StartResult,
    VariantResult,
)

# Issue 3, point 5. Throughput and p99 are ratios to bare FastAPI in the same run.
MIN_RPS_RATIO = {METRICS_LOGS.key: 0.90, TRACES_10.key: 0.85, TRACES_100.key: 0.60}
MAX_P99_RATIO = 2.0
MAX_RSS_MIB = 96.0
MAX_START_S = 1.5


@dataclass(frozen=True)
class Budget:
    name: str
    limit: str
    measured: str
    passed: bool | None  # None: not measured in this run (variant skipped or failed)


@dataclass
class Run:
    config: Config
    machine: Machine
    started: str  # UTC, ISO 8601
    elapsed_s: float
    load_before: str
    load_after: str
    results: list[VariantResult]
    starts: list[StartResult]
    commands: list[tuple[str, str]]  # (what, shell line)
    notes: list[str] = field(default_factory=list)
    attribution: list[dict[str, Any]] = field(default_factory=list)  # bench.attribution rows

    def result(self, key: str) -> VariantResult | None:
        return next((r for r in self.results if r.variant.key == key), None)


def evaluate(run: Run) -> list[Budget]:
    bare = run.result(BARE.key)
    bare_rps = bare.rps if bare else None
    bare_p99 = bare.p99_ms if bare else None
    budgets: list[Budget] = []
    for key, minimum in MIN_RPS_RATIO.items():
        result = run.result(key)
        ratio = _ratio(result.rps if result else None, bare_rps)
        label = result.variant.label if result else key
        budgets.append(
            Budget(
                f"Throughput, {label}",
                f">= {minimum:.2f}x bare",
                _x(ratio),
                _at_least(ratio, minimum),
            )
        )
    for result in run.results:
        if result.variant.kind != "pleno":
            continue
        ratio = _ratio(result.p99_ms, bare_p99)
        budgets.append(
            Budget(
                f"p99 latency, {result.variant.label}",
                f"<= {MAX_P99_RATIO:.1f}x bare",
                _x(ratio),
                None if ratio is None else ratio <= MAX_P99_RATIO,
            )
        )
    rss = [
        (r.rss_after_load_mib, r.variant.label)
        for r in run.results
        if r.variant.kind == "pleno" and r.rss_after_load_mib is not None
    ]
    worst = max(rss, default=None)
    budgets.append(
        Budget(
            f"RSS after {run.config.rss_requests:,} requests, worst Pleno variant",
            f"<= {MAX_RSS_MIB:.0f} MiB",
            f"{worst[0]:.1f} MiB ({worst[1]})" if worst else "n/a",
            None if worst is None else worst[0] <= MAX_RSS_MIB,
        )
    )
    for start in run.starts:
        budgets.append(_start_budget(f"{start.variant.label}, own phase", start.median_s))
    timed = [(r.start_s, r.variant.label) for r in run.results if r.variant.kind == "pleno"]
    slowest = max(((t, label) for t, label in timed if t is not None), default=None)
    budgets.append(
        _start_budget(
            f"slowest Pleno variant ({slowest[1]}), in the rounds" if slowest else "Pleno variants",
            slowest[0] if slowest else None,
        )
    )
    return budgets


def _start_budget(what: str, median: float | None) -> Budget:
    return Budget(
        f"Start to ready (median), {what}",
        f"<= {MAX_START_S:.1f} s",
        _num(median, 2, " s"),
        None if median is None else median <= MAX_START_S,
    )


def _start_series(run: Run) -> list[tuple[str, list[float]]]:
    """The dedicated start phase first, then every variant's start in each round."""
    series = [(f"{s.variant.label} (own phase)", s.seconds) for s in run.starts]
    series += [(r.variant.label, [x.start_s for x in r.samples]) for r in run.results if r.samples]
    return series


def render(run: Run) -> str:
    cfg = run.config
    budgets = evaluate(run)
    lines = [
        "# Pleno telemetry overhead",
        "",
        f"Run of {run.started}, git {run.machine.git}, {run.elapsed_s / 60:.1f} min: "
        f"{cfg.rounds} round(s) of {cfg.duration_s:g} s per variant after a warm-up, "
        f"`wrk -t1 -c{cfg.connections}` on `GET /version`. Each cell is the median over "
        "rounds; every ratio is to bare FastAPI in this same run.",
        "",
        "Reproduce with `make bench` (bench/run.py; the report lands in var/bench/report.md). "
        "`BENCH_PUBLISH=1 make bench` also writes it here, to docs/benchmarks.md. A benchmark, "
        "not a test: it exits 0 when a budget is missed, and says so below.",
        "",
        "## Results",
        "",
        *_results_table(run),
        "",
        *_anchor_line(run),
        *_reference_line(run),
        "## Budgets",
        "",
        "| Budget | Limit | Measured | Result |",
        "|---|---|---|---|",
        *(f"| {b.name} | {b.limit} | {b.measured} | {_verdict(b.passed)} |" for b in budgets),
        "",
        _budget_summary(budgets),
        "",
        *_attribution(run),
        "## Start to ready",
        "",
        "Time from spawning the process to its first 200 from `/ready`, polled every 10 ms. "
        "Pleno with default settings is started on its own, back to back; the other rows are "
        "the starts of each round's fresh server.",
        "",
        "| Server | Median | Min | Max | Starts |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {label} | {_num(statistics.median(xs) if xs else None, 2, ' s')} "
            f"| {_num(min(xs, default=None), 2, ' s')} "
            f"| {_num(max(xs, default=None), 2, ' s')} | {len(xs)} |"
            for label, xs in _start_series(run)
        ),
        "",
        "## Every round",
        "",
        "Spread is (max - min) / median of req/s: the run-to-run noise on this machine.",
        "",
        "| Variant | req/s per round | Spread | p99 ms per round | RSS MiB at end |",
        "|---|---|---:|---|---|",
        *_rounds_table(run),
        "",
        *_problems(run),
        "## Machine",
        "",
        *_machine(run),
        "",
        "## Method",
        "",
        *_method(cfg),
        "",
        "## Commands",
        "",
        "Ports, the temporary directory and the sink port differ per run.",
        "",
        "```sh",
        *(f"# {what}\n{line}" for what, line in run.commands),
        "```",
        "",
    ]
    return "\n".join(lines)


def _attribution(run: Run) -> list[str]:
    if not run.attribution:
        return []
    by_key = {row["key"]: row for row in run.attribution}
    lines = [
        "## Where the time goes",
        "",
        "CPU time per `GET /version`, measured in-process by bench/attribution.py: the ASGI apps "
        "are called directly (no socket, no uvicorn, no HTTP parsing, which are the same for "
        "every app), and the process's CPU time is read, span export included. Each row changes "
        "one thing from the row named in the last column, so the difference is that thing's "
        "cost. Median over rounds, one process, apps interleaved.",
        "",
        "| Configuration | CPU µs per request | Spread | Difference | From |",
        "|---|---:|---:|---:|---|",
    ]
    for row in run.attribution:
        base = by_key.get(row["compare_to"] or "")
        difference = f"{row['cpu_us'] - base['cpu_us']:+.1f} µs" if base else "-"
        lines.append(
            f"| {row['label'].strip()} | {row['cpu_us']:.1f} | {row['spread_us']:.1f} "
            f"| {difference} | {base['label'] if base else '-'} |"
        )
    return [*lines, ""]


def failed_budgets(run: Run) -> list[Budget]:
    return [b for b in evaluate(run) if b.passed is False]


def _results_table(run: Run) -> list[str]:
    bare = run.result(BARE.key)
    bare_rps = bare.rps if bare else None
    bare_p99 = bare.p99_ms if bare else None
    rows = [
        "| # | Variant | req/s | vs bare | p50 ms | p99 ms | p99 vs bare "
        f"| RSS MiB after {run.config.rss_requests:,} req | Start to ready "
        "| Spans received | Traced requests | Log lines per request |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in run.results:
        # The acceptance text's numbering, also when BENCH_VARIANTS runs a subset.
        tag = _TAGS.get(r.variant.kind, str(VARIANTS.index(r.variant) + 1))
        if not r.samples:
            reason = r.failures[0] if r.failures else "not run"
            rows.append(f"| {tag} | {r.variant.label} | failed: {_cell(reason)} |" + " |" * 9)
            continue
        served = r.requests_served
        traced = f"{r.server_spans / served:.1%}" if r.variant.traced and served else "-"
        spans = f"{r.spans:,}" if r.variant.traced else "-"
        rows.append(
            f"| {tag} | {r.variant.label} | {_num(r.rps, 0)} | {_x(_ratio(r.rps, bare_rps))} "
            f"| {_num(r.p50_ms, 2)} | {_num(r.p99_ms, 2)} | {_x(_ratio(r.p99_ms, bare_p99))} "
            f"| {_num(r.rss_after_load_mib, 1)} | {_num(r.start_s, 2, ' s')} "
            f"| {spans} | {traced} | {r.log_lines / served if served else 0:.2f} |"
        )
    return rows


# The comparison rows are lettered; Pleno's rows keep the acceptance text's numbers.
_TAGS = {"anchor": "A", "lean": "R"}


def _anchor_line(run: Run) -> list[str]:
    anchor = next((r for r in run.results if r.variant.kind == "anchor"), None)
    pleno = run.result(TRACES_10.key)
    bare = run.result(BARE.key)
    if anchor is None or pleno is None or bare is None:
        return []
    versus = _ratio(pleno.rps, anchor.rps)
    return [
        f"Anchor: the off-the-shelf stack reaches {_x(_ratio(anchor.rps, bare.rps))} bare; "
        f"Pleno at the same 10% sampling reaches {_x(_ratio(pleno.rps, bare.rps))}, "
        f"that is {_x(versus)} the anchor's throughput. Spans per traced request: "
        f"anchor {_per(anchor.spans, anchor.server_spans)}, "
        f"Pleno {_per(pleno.spans, pleno.server_spans)} "
        "(the contrib instrumentation adds an `http receive` and an `http send` span by default).",
        "",
    ]


def _reference_line(run: Run) -> list[str]:
    lean = run.result(LEAN.key)
    pleno = run.result(TRACES_10.key)
    bare = run.result(BARE.key)
    if lean is None or pleno is None or bare is None:
        return []
    return [
        f"Reference: the issue's lean design (bench/lean_app.py: one pure-ASGI middleware, "
        f"prometheus_client by route template, an orjson line to fd 1, one server span) reaches "
        f"{_x(_ratio(lean.rps, bare.rps))} bare at 10% sampling in this run (the acceptance "
        f"text quotes 0.82-0.84x); Pleno reaches {_x(_ratio(pleno.rps, bare.rps))}. The "
        "reference does none of Pleno's other per-request work: request ids, security headers, "
        "probes counted apart, the in-flight gauge, trace ids on unsampled lines.",
        "",
    ]


def _rounds_table(run: Run) -> list[str]:
    rows = []
    for r in run.results:
        if not r.samples:
            continue
        rps = [s.rps for s in r.samples]
        median = r.rps or 0.0
        spread = f"{(max(rps) - min(rps)) / median:.1%}" if median and len(rps) > 1 else "n/a"
        rows.append(
            f"| {r.variant.label} | {', '.join(f'{v:.0f}' for v in rps)} | {spread} "
            f"| {', '.join(f'{s.p99_ms:.2f}' for s in r.samples)} "
            f"| {', '.join(f'{s.rss_end_mib:.1f}' for s in r.samples)} |"
        )
    return rows


def _problems(run: Run) -> list[str]:
    items = [f"- {note}" for note in run.notes]
    for r in run.results:
        items += [f"- {r.variant.label}: {_cell(f)}" for f in r.failures]
        if r.errors:
            items.append(
                f"- {r.variant.label}: {r.errors:,} socket errors or non-2xx answers under load"
            )
    for s in run.starts:
        items += [f"- start, {s.variant.label}: {_cell(f)}" for f in s.failures]
    return ["## Problems seen in this run", "", *items, ""] if items else []


def _machine(run: Run) -> list[str]:
    m, cfg = run.machine, run.config
    if cfg.server_cpu is not None:
        pinning = (
            f"server pinned to CPU {cfg.server_cpu}; wrk, the OTLP sink and the harness "
            f"on CPU {cfg.client_cpu}"
        )
    else:
        pinning = "nothing pinned (needs taskset and two CPUs): results are not comparable"
    packages = ", ".join(f"{name} {version}" for name, version in m.packages.items())
    return [
        f"- CPU: {m.cpu_model}, {m.cpus} CPUs online; {pinning}",
        f"- Memory: {m.memory_gib:.1f} GiB",
        f"- OS: {m.os_name}; kernel {m.kernel}",
        f"- Python: {m.python}; {m.wrk}",
        f"- Packages: {packages}",
        f"- Load average (1, 5, 15 min) before: {run.load_before}; after: {run.load_after}",
    ]


def _method(cfg: Config) -> list[str]:
    return [
        "- Every server runs under uvicorn with the settings `pleno serve` uses: 1 worker, uvloop, "
        "httptools, lifespan on, no Server header, no uvicorn access log (the anchor turns it on "
        "as its JSON access log).",
        "- Rounds are interleaved (every variant once, then again), so drift on a shared machine "
        "hits all variants alike. Each measurement uses a fresh process: spawn, wait for `/ready`, "
        f"warm up, measure {cfg.duration_s:g} s, SIGTERM. The warm-up is {cfg.warmup_s:g} s of "
        f"load, except in the first round: there it is exactly {cfg.rss_requests:,} requests, "
        "after which VmRSS is read from /proc/<pid>/status (the RSS column).",
        f"- The load is closed-loop: wrk keeps {cfg.connections} keep-alive connections busy, "
        "so p50/p99 include queueing in the server at that concurrency; latency ratios are at "
        "equal concurrency, not equal throughput.",
        "- `GET /version` touches no database, so the difference to bare FastAPI is the cost of "
        "Pleno's middleware and telemetry (RED metrics, one access line, the trace span).",
        "- Server output (the logs) is written to a file in the run's temporary directory, like "
        "a container runtime that drains stdout: an unread pipe would block the server, and "
        "/dev/null would hide the cost of the write. The file is counted (log lines per "
        "request) and then deleted; the first lines of each variant are kept under var/bench/logs.",
        "- Traces go over OTLP/HTTP to bench/otlp_sink.py on the client CPU, which answers every "
        "export at once and counts spans; a span total is taken around each server's lifetime "
        "(SIGTERM flushes the exporter). Traced requests = server spans / requests served, "
        "warm-up included: about the sampling ratio when nothing is dropped. This ratio and log "
        f"lines per request read up to about 1% high: wrk does not count the up to "
        f"{cfg.connections} requests still in flight when each of its runs ends.",
        "- The anchor app is created with "
        '`FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})`: FastAPI\'s '
        "built-in OpenTelemetry tracing switches itself on when a global SDK tracer provider is "
        "set, and would otherwise trace every request a second time next to the contrib "
        "instrumentation. Bare FastAPI keeps the defaults: it sets no provider, so the built-in "
        "telemetry stays dormant.",
        "- The reference row (R) is bench/lean_app.py, the design the acceptance text quotes as "
        "reaching 0.82-0.84x: one pure-ASGI middleware with prometheus_client by route template, "
        "an orjson line written to fd 1 per request, and one server span, exported with Pleno's "
        "batch settings. It is measured here so that the quoted figure is checked on this machine, "
        "not assumed. It does not call `gc.freeze()` after start-up as Pleno "
        "does, so collections rescan its whole heap: that shows in its p99, not its throughput.",
        "- Pleno runs with a temporary SQLite database (migrated once, before any start), "
        "PLENO_LOG_LEVEL=info and PLENO_SHUTDOWN_DELAY=0, with every other PLENO_* and OTEL_* "
        "variable removed from the environment. The variants also set PLENO_LOG_FORMAT=json and "
        "their switches (see Commands); the default-settings starts set nothing else.",
        "- Servers cache bytecode under var/bench/pycache, even where the shell sets "
        "PYTHONDONTWRITEBYTECODE: a deployed image ships compiled bytecode, so start to ready "
        "should not include compiling Pleno's modules.",
    ]


def _budget_summary(budgets: list[Budget]) -> str:
    failed = [b for b in budgets if b.passed is False]
    missing = [b for b in budgets if b.passed is None]
    if failed:
        text = "**Budgets FAILED:** " + "; ".join(f"{b.name} ({b.measured})" for b in failed) + "."
    else:
        text = f"All {len(budgets) - len(missing)} measured budgets pass."
    if missing:
        text += " Not measured: " + "; ".join(b.name for b in missing) + "."
    return text


def _verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "**FAIL**", None: "n/a"}[passed]


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def _at_least(value: float | None, minimum: float) -> bool | None:
    return None if value is None else value >= minimum


def _per(spans: int, server_spans: int) -> str:
    return f"{spans / server_spans:.1f}" if server_spans else "n/a"


def _x(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def _num(value: float | None, digits: int, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def _cell(text: str) -> str:
    # One table cell or bullet: no newlines, no pipes, bounded length.
    flat = " ".join(text.split()).replace("|", "/")
    return flat if len(flat) <= 300 else flat[:297] + "..."
