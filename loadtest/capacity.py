"""`make capacity`: measure CPU seconds per request, and predict what the HPA will do with it.

The measurement runs a local `pleno serve`, then one short Locust run per endpoint (and one with
the whole mix), with no think time. It reads the server process's CPU time (user + system, all
threads) from /proc/<pid>/stat before and after each run, and divides by the API requests the
server itself counted (pleno_http_requests_total). CPU time, unlike wall time, barely depends on
what else the machine is doing.

The model turns that into the HPA's arithmetic (docs/loadtest.md explains it):
- a pod requests 100m CPU and the HPA targets 70% of it, so one pod at target spends 0.07 CPU s/s;
- requests per second per pod at target = 0.07 / (CPU s per request);
- desired replicas = ceil(current * utilization / target), unless utilization / target is within
  10% of 1 (then nothing changes), clamped to min 2 and max 5, as the upstream controller does.

Usage: python -m loadtest.capacity [--duration S] [--users N] [--markdown PATH] [--chart PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from loadtest.local import ROOT, LocalPleno, locust_command, run_locust

# --- The model --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HpaPolicy:
    """The numbers in deploy/k8s/base (hpa.yaml, the Deployment's CPU request)."""

    cpu_request: float = 0.1  # cores: 100m
    target_utilization: float = 70.0  # percent of the request
    tolerance: float = 0.1  # kube-controller-manager --horizontal-pod-autoscaler-tolerance
    min_replicas: int = 2
    max_replicas: int = 5

    @property
    def target_cpu(self) -> float:
        """CPU cores one pod uses at the target: 0.1 * 70% = 0.07."""
        return self.cpu_request * self.target_utilization / 100


POLICY = HpaPolicy()


def cpu_seconds_per_request(cpu_seconds: float, requests: int) -> float:
    if requests <= 0:
        raise ValueError("no request completed: CPU per request is undefined")
    if cpu_seconds < 0:
        raise ValueError("CPU time cannot be negative")
    return cpu_seconds / requests


def rps_per_pod(cpu_per_request: float, policy: HpaPolicy = POLICY) -> float:
    """Requests per second one pod serves while using exactly the HPA's target CPU."""
    if cpu_per_request <= 0:
        raise ValueError("CPU per request must be positive")
    return policy.target_cpu / cpu_per_request


def utilization(
    rps: float, cpu_per_request: float, replicas: int, policy: HpaPolicy = POLICY
) -> float:
    """Average CPU utilization (percent of the request) when `replicas` share `rps` evenly."""
    return rps * cpu_per_request / (replicas * policy.cpu_request) * 100


def clamp(replicas: int, policy: HpaPolicy = POLICY) -> int:
    return max(policy.min_replicas, min(policy.max_replicas, replicas))


def hpa_desired_replicas(
    current: int, current_utilization: float, policy: HpaPolicy = POLICY
) -> int:
    """One HPA decision: ceil(current * utilization / target), with tolerance and clamp.

    Upstream (pkg/controller/podautoscaler/replica_calculator.go) skips the change when the usage
    ratio is within the tolerance of 1.0; the controller then clamps to [min, max]. The scale-up
    and scale-down `behavior` limits only pace the steps towards this number; they do not change
    where it settles.
    """
    # The controller works in whole percent: utilization = (sum of usage * 100) // requests.
    ratio = math.floor(current_utilization) / policy.target_utilization
    if abs(1.0 - ratio) <= policy.tolerance:
        return clamp(current, policy)
    # Plain float64 arithmetic, as upstream (so 77% against 70% is just outside the tolerance:
    # 77 / 70 - 1 is 0.10000000000000009 there as here).
    return clamp(math.ceil(ratio * current), policy)


def settled_replicas(
    rps: float, cpu_per_request: float, policy: HpaPolicy = POLICY, start: int | None = None
) -> int:
    """Where the HPA stops when a steady `rps` arrives while `start` (default min) pods run."""
    replicas = clamp(policy.min_replicas if start is None else start, policy)
    seen = {replicas}
    while True:
        desired = hpa_desired_replicas(
            replicas, utilization(rps, cpu_per_request, replicas, policy), policy
        )
        if desired == replicas:
            return replicas
        if desired in seen:
            # A cycle: the scale-down stabilization window keeps the highest recommendation.
            return max(desired, replicas)
        seen.add(desired)
        replicas = desired


def first_rps_at_max(cpu_per_request: float, policy: HpaPolicy = POLICY) -> float:
    """The request rate above which the HPA settles on max replicas (starting from min)."""
    low, high = 0.0, policy.max_replicas * policy.cpu_request / cpu_per_request * 10
    while high - low > 1e-9 * high:
        middle = (low + high) / 2
        if settled_replicas(middle, cpu_per_request, policy) >= policy.max_replicas:
            high = middle
        else:
            low = middle
    return high


def rps_beyond_max(cpu_per_request: float, policy: HpaPolicy = POLICY) -> float:
    """Above this rate max replicas run above target + tolerance: the HPA would want more."""
    ceiling = policy.max_replicas * policy.target_cpu * (1 + policy.tolerance)
    return ceiling / cpu_per_request


# --- The measurement --------------------------------------------------------------------------


def read_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads, in seconds (proc(5): fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Scenario:
    name: str  # what the report calls it
    mix: str  # LOAD_MIX for locustfile.py


@dataclass(frozen=True)
class Measurement:
    scenario: str
    mix: str
    requests: int
    failures: int
    cpu_seconds: float
    wall_seconds: float
    routes: dict[str, int] = field(default_factory=dict)  # what Locust sent, per route

    @property
    def cpu_per_request(self) -> float:
        return cpu_seconds_per_request(self.cpu_seconds, self.requests)

    @property
    def throughput(self) -> float:
        return self.requests / self.wall_seconds


def default_scenarios(mix: Mapping[str, int]) -> list[Scenario]:
    """One scenario per endpoint of the mix, then the mix itself."""
    labels = {
        "list": "GET /api/v1/items",
        "get": "GET /api/v1/items/{item_id}",
        "create": "POST /api/v1/items",
        "update": "PATCH /api/v1/items/{item_id}",
        "work": "GET /api/v1/work",
        "chain": "GET /api/v1/chain",
    }
    scenarios = [Scenario(labels[name], f"{name}=1") for name in mix]
    scenarios.append(Scenario("default mix", ",".join(f"{n}={w}" for n, w in mix.items())))
    return scenarios


def locust_counts(json_path: Path) -> tuple[dict[str, int], int]:
    """({"METHOD name": requests}, failures) from Locust's --json-file.

    That file is written once at shutdown, so it is final; the CSV is rewritten each second and
    can miss the last requests.
    """
    entries = json.loads(json_path.read_text())
    routes: dict[str, int] = {}
    for entry in entries:
        key = f"{entry['method']} {entry['name']}"
        routes[key] = routes.get(key, 0) + int(entry["num_requests"])
    return routes, sum(int(entry["num_failures"]) for entry in entries)


def served_requests(url: str) -> int:
    """API requests the server has answered: the sum of pleno_http_requests_total.

    Counting on the server side matches the CPU time read from the same process; probes and
    /metrics itself are counted apart (docs/telemetry.md), so this scrape does not count itself.
    """
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    text = httpx.get(url + "/metrics", timeout=10).raise_for_status().text
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "pleno_http_requests":
            total += sum(
                sample.value for sample in family.samples if sample.name.endswith("_total")
            )
    return round(total)


def measure(
    server: LocalPleno,
    scenario: Scenario,
    *,
    duration: int,
    users: int,
    workdir: Path,
    idle_cpu_rate: float,
    env: Mapping[str, str],
) -> Measurement:
    slug = "".join(c if c.isalnum() else "_" for c in scenario.mix)
    prefix = workdir / slug
    command = locust_command(
        server.url,
        users,
        users,
        f"{duration}s",
        extra=["--only-summary", f"--json-file={prefix}"],
    )
    run_env = dict(env, LOAD_MIX=scenario.mix, LOAD_THINK_MIN="0", LOAD_THINK_MAX="0")
    before_requests = served_requests(server.url)
    before_cpu, before_wall = read_cpu_seconds(server.pid), time.monotonic()
    code = run_locust(command, run_env)
    after_cpu, after_wall = read_cpu_seconds(server.pid), time.monotonic()
    requests = served_requests(server.url) - before_requests
    routes, failures = locust_counts(Path(f"{prefix}.json"))
    if code not in (0, 1):  # 1 means failures, which the report shows; others mean a crash
        raise RuntimeError(f"locust exited with {code} for {scenario.name}")
    wall = after_wall - before_wall
    # The server's own background CPU while Locust starts and stops is not request cost.
    cpu = max(0.0, after_cpu - before_cpu - idle_cpu_rate * wall)
    return Measurement(scenario.name, scenario.mix, requests, failures, cpu, wall, routes)


def idle_rate(pid: int, seconds: float = 3.0) -> float:
    """CPU seconds per second the server burns with no traffic."""
    before = read_cpu_seconds(pid)
    time.sleep(seconds)
    return (read_cpu_seconds(pid) - before) / seconds


def seed_items(url: str, count: int) -> None:
    """Fill the database so a list request returns full pages, as it would in production."""
    with httpx.Client(base_url=url, timeout=10) as client:
        for number in range(count):
            # uuid: a reused PostgreSQL database already holds the seeds of an earlier run.
            name = f"seed-{number}-{uuid.uuid4().hex[:12]}"
            response = client.post("/api/v1/items", json={"name": name, "quantity": 1})
            response.raise_for_status()


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        "unknown",
    )
    memory = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        "unknown",
    )
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# A few failures are real behaviour (SQLite answers 503 "database is locked" when concurrent
# writers wait past PLENO_DB_TIMEOUT on a busy machine); more would make the numbers meaningless.
MAX_FAILURE_RATIO = 0.01


def describe_database(url: str) -> str:
    if not url:
        return "a fresh SQLite file (in the server process: its CPU counts as the server's)"
    scheme = url.split(":", 1)[0]
    host = url.rsplit("@", 1)[-1].split("/", 1)[0]
    return f"{scheme} at {host} (a separate process: its CPU is not counted, as in a pod)"


def loadavg() -> str:
    return ", ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- The report -------------------------------------------------------------------------------


def nice_step(value: float) -> float:
    """1, 2 or 5 times a power of ten, at or above `value`."""
    if value <= 0:
        raise ValueError("step must be positive")
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if factor * power >= value * (1 - 1e-12):
            return float(factor * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def rps_grid(cpu_per_request: float, policy: HpaPolicy = POLICY, rows: int = 10) -> list[float]:
    """Round request rates from low load to past the point where max replicas are not enough."""
    step = nice_step(rps_beyond_max(cpu_per_request, policy) * 1.2 / rows)
    return [step * k for k in range(1, rows + 1)]


def replicas_table(
    rps_values: Iterable[float], cpu_per_request: float, policy: HpaPolicy = POLICY
) -> list[tuple[float, int, float]]:
    """(rps, settled replicas, resulting utilization %) for each target rate."""
    table = []
    for rps in rps_values:
        replicas = settled_replicas(rps, cpu_per_request, policy)
        table.append((rps, replicas, utilization(rps, cpu_per_request, replicas, policy)))
    return table


def predicted_mix_cost(singles: Sequence[Measurement], mixed: Measurement) -> float:
    """The mixed run's CPU per request, predicted from the single-endpoint runs.

    Each route's cost is weighted by how often the mixed run really sent it, so random task
    picking does not count as a model error.
    """
    cost = {m.scenario: m.cpu_per_request for m in singles}
    counted = {route: n for route, n in mixed.routes.items() if route in cost}
    total = sum(counted.values())
    if total == 0:
        raise ValueError("the mixed run sent none of the measured routes")
    return sum(cost[route] * n for route, n in counted.items()) / total


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def render_markdown(
    measurements: Sequence[Measurement],
    *,
    info: Mapping[str, str],
    settings: Mapping[str, str],
    policy: HpaPolicy = POLICY,
    chart_name: str = "capacity.png",
) -> str:
    mix = measurements[-1]
    lines = [
        "# Capacity model",
        "",
        "Generated by `make capacity` (`loadtest/capacity.py`); do not edit by hand, re-run it.",
        "How the numbers are made, and how to read them, is in [loadtest.md](loadtest.md).",
        "",
        "## The run",
        "",
        f"- Measured {info['date']} on {info['cores']} cores of `{info['cpu']}` "
        f"({info['memory']} RAM), Linux {info['kernel']}, Python {info['python']}.",
        f"- Load average (1, 5, 15 min) before: {info['loadavg_before']}; after: "
        f"{info['loadavg_after']}. {info['note']}",
        f"- One local `pleno serve`: one uvicorn worker, {info['database']}, JSON access log on, "
        f"metrics on, tracing off. Locust with {settings['users']} users, no think time, "
        f"{settings['duration']} s per scenario, `cpu_ms={settings['work_cpu_ms']}` for /work.",
        f"- Server idle CPU, subtracted from every run: "
        f"{float(info['idle_rate']) * 1000:.2f} ms/s.",
        "- CPU time is user + system time of the server process, all threads, read from "
        "`/proc/<pid>/stat`. It depends far less on other processes than latency or throughput "
        "do, but it is not immune: caches and SMT siblings shared with a busy neighbour "
        "inflate it (a run under a load average of 6 measured up to 1.8x these values). Measure "
        "on a quiet machine; the throughput column is only what this machine achieved.",
        "",
        "## CPU per request",
        "",
        "| Scenario | Requests | Failures | CPU s | CPU ms/request | Throughput here (req/s) "
        "| req/s per pod at 70% of 100m |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        lines.append(
            f"| {m.scenario} | {m.requests} | {m.failures} | {m.cpu_seconds:.2f} "
            f"| {fmt_ms(m.cpu_per_request)} | {m.throughput:.0f} "
            f"| {rps_per_pod(m.cpu_per_request, policy):.1f} |"
        )
    predicted = predicted_mix_cost(measurements[:-1], mix)
    shares = ", ".join(
        f"{route} {n / sum(mix.routes.values()):.0%}" for route, n in mix.routes.items()
    )
    lines += [
        "",
        f"The mix weights are {mix.mix.replace(',', ', ')} (`DEFAULT_MIX` in "
        f"loadtest/locustfile.py). The mixed run sent: {shares}. Weighting the single-endpoint "
        f"costs by those shares predicts {fmt_ms(predicted)} ms per request; the mixed run "
        f"measured {fmt_ms(mix.cpu_per_request)} ms.",
        "",
        "## What the HPA does with the mix",
        "",
        f"One pod at the target uses {policy.target_cpu:.2f} CPU (70% of the 100m request), so it "
        f"serves **{rps_per_pod(mix.cpu_per_request, policy):.1f} req/s** of this mix. "
        f"Starting from {policy.min_replicas} replicas, the HPA settles on:",
        "",
        "| Target req/s | Replicas | CPU per pod (% of request) |",
        "|---:|---:|---:|",
    ]
    for rps, replicas, percent in replicas_table(
        rps_grid(mix.cpu_per_request, policy), mix.cpu_per_request, policy
    ):
        flag = (
            " (over target at max)"
            if percent > policy.target_utilization * (1 + policy.tolerance)
            else ""
        )
        lines.append(f"| {rps:g} | {replicas} | {percent:.0f}{flag} |")
    at_max = first_rps_at_max(mix.cpu_per_request, policy)
    work = measurements[_index(measurements, "GET /api/v1/work")]
    beyond = rps_beyond_max(mix.cpu_per_request, policy)
    lines += [
        "",
        f"- It reaches **{policy.max_replicas} replicas above {at_max:.1f} req/s** "
        f"(the lowest rate at which the formula, applied until it stops changing, keeps "
        f"{policy.max_replicas}; just below it the HPA may touch {policy.max_replicas} and, "
        "after the 5-minute scale-down window, settle one lower).",
        f"- Above **{beyond:.1f} req/s**, {policy.max_replicas} pods run over "
        f"{policy.target_utilization * (1 + policy.tolerance):.0f}% (target + 10% tolerance): "
        "the HPA would add pods but is at max. Raise `maxReplicas` (production overlay) or cut "
        "CPU per request.",
        f"- With /api/v1/work alone at `cpu_ms={settings['work_cpu_ms']}`, "
        f"{rps_per_pod(work.cpu_per_request, policy):.2f} req/s per pod: the endpoint that "
        "makes the HPA move in the demo.",
        "",
        f"![Target req/s against the replicas the HPA settles on]({chart_name})",
        "",
    ]
    return "\n".join(lines)


def _index(measurements: Sequence[Measurement], name: str) -> int:
    for index, m in enumerate(measurements):
        if m.scenario == name:
            return index
    raise KeyError(name)


def render_chart(
    measurements: Sequence[Measurement], path: Path, policy: HpaPolicy = POLICY
) -> None:
    import matplotlib  # noqa: PLC0415 - heavy, and only this function needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    mix = measurements[-1]
    beyond = rps_beyond_max(mix.cpu_per_request, policy)
    xs = [beyond * 1.3 * k / 400 for k in range(1, 401)]
    replicas = [settled_replicas(x, mix.cpu_per_request, policy) for x in xs]
    percent = [
        utilization(x, mix.cpu_per_request, r, policy) for x, r in zip(xs, replicas, strict=True)
    ]

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(3, 2))
    left.step(xs, replicas, where="post", color="tab:blue", label="replicas the HPA settles on")
    left.set_xlabel("target req/s (default mix)")
    left.set_ylabel("replicas")
    left.set_ylim(0, policy.max_replicas + 1)
    left.axvline(
        first_rps_at_max(mix.cpu_per_request, policy),
        color="tab:gray",
        ls=":",
        label=f"reaches max {policy.max_replicas}",
    )
    left.axvline(beyond, color="tab:red", ls=":", label="max is not enough")
    cpu_axis = left.twinx()
    cpu_axis.plot(xs, percent, color="tab:orange", label="CPU per pod, % of request")
    cpu_axis.axhline(
        policy.target_utilization,
        color="tab:orange",
        ls="--",
        lw=1,
        label=f"target {policy.target_utilization:.0f}%",
    )
    cpu_axis.set_ylabel("CPU % of request")
    cpu_axis.set_ylim(0, max(percent) * 1.1)
    handles = left.get_legend_handles_labels()[0] + cpu_axis.get_legend_handles_labels()[0]
    left.legend(handles=handles, loc="upper left", fontsize=8)
    left.set_title(
        f"HPA {policy.min_replicas}..{policy.max_replicas} at "
        f"{policy.target_utilization:.0f}% of {policy.cpu_request * 1000:.0f}m"
    )

    names = [m.scenario.replace("/api/v1", "") for m in measurements]
    values = [rps_per_pod(m.cpu_per_request, policy) for m in measurements]
    right.barh(names, values, color="tab:green")
    right.set_xscale("log")
    right.set_xlabel("req/s per pod at 70% of 100m (log)")
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=8)
    right.set_title("Per scenario")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- The command ------------------------------------------------------------------------------


def read_default_mix() -> dict[str, int]:
    """DEFAULT_MIX from locustfile.py, without importing Locust (which monkey-patches gevent)."""
    import ast  # noqa: PLC0415

    tree = ast.parse(Path(ROOT / "loadtest" / "locustfile.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "DEFAULT_MIX"
            and node.value is not None
        ):
            value = ast.literal_eval(node.value)
            return {str(k): int(v) for k, v in value.items()}
    raise ValueError("DEFAULT_MIX not found in loadtest/locustfile.py")


def main(argv: Sequence[str] | None = None, say: Callable[[str], object] = print) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="make capacity", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=int(env.get("CAPACITY_DURATION", "10")))
    parser.add_argument("--users", type=int, default=int(env.get("CAPACITY_USERS", "8")))
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "capacity.md")
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "capacity.png")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "capacity")
    parser.add_argument("--note", default=env.get("CAPACITY_NOTE", ""))
    parser.add_argument(
        "--database-url",
        default=env.get("CAPACITY_DATABASE_URL", ""),
        help="a PostgreSQL URL (as in production: the database's CPU is not the pod's); "
        "empty: a fresh SQLite file",
    )
    args = parser.parse_args(argv)

    mix = read_default_mix()
    scenarios = default_scenarios(mix)
    work_cpu_ms = env.get("LOAD_WORK_CPU_MS", "50")
    locust_env = {
        "LOAD_WORK_CPU_MS": work_cpu_ms,
        "LOAD_MAX_ERROR_RATIO": "",
        "LOAD_MAX_P95_MS": "",
    }
    info = machine()
    info["loadavg_before"] = loadavg()
    measurements: list[Measurement] = []
    database = {}
    if args.database_url:
        # PostgreSQL is not migrated on start by default (one migration per release in a
        # cluster); a local measuring run migrates its own database.
        database = {"PLENO_DATABASE_URL": args.database_url, "PLENO_MIGRATE_ON_START": "true"}
    info["database"] = describe_database(args.database_url)
    with LocalPleno(args.workdir / "server", **database) as server:
        seed_items(server.url, 60)
        rate = idle_rate(server.pid)
        for scenario in scenarios:
            say(f"capacity: {scenario.name} for {args.duration}s ...")
            result = measure(
                server,
                scenario,
                duration=args.duration,
                users=args.users,
                workdir=args.workdir,
                idle_cpu_rate=rate,
                env=locust_env,
            )
            say(
                f"capacity: {scenario.name}: {result.requests} requests, {result.failures} "
                f"failed, {fmt_ms(result.cpu_per_request)} CPU ms/request"
            )
            measurements.append(result)
    info.update(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        loadavg_after=loadavg(),
        idle_rate=str(rate),
        note=args.note,
    )
    settings = {
        "users": str(args.users),
        "duration": str(args.duration),
        "work_cpu_ms": work_cpu_ms,
    }
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(
        render_markdown(measurements, info=info, settings=settings, chart_name=args.chart.name)
    )
    render_chart(measurements, args.chart)
    raw = {"machine": info, "settings": settings, "measurements": [asdict(m) for m in measurements]}
    (args.workdir / "capacity.json").write_text(json.dumps(raw, indent=2))
    say(f"capacity: wrote {args.markdown} and {args.chart}")
    suspect = [m.scenario for m in measurements if m.failures > MAX_FAILURE_RATIO * m.requests]
    if suspect:
        say(f"capacity: over {MAX_FAILURE_RATIO:.0%} of requests failed in: {', '.join(suspect)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
