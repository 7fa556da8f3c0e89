"""A real Prometheus scraping a real `pleno serve`, with the project's rules loaded.

Prometheus (Debian package) runs in the foreground on loopback with a temporary TSDB and a
1 s scrape and evaluation interval. Its pleno job is prometheus.yml's own `kubernetes-pods` job,
relabelling included; only the discovery is swapped: a file_sd file carries the same
`__meta_kubernetes_pod_*` labels that Kubernetes discovery would. So the annotation-based
address rewrite (IPv4 and IPv6), the phase filter and the label mapping run in the real
relabelling engine. The service is traced (to an in-test OTLP receiver), so its histogram
carries exemplars, as in production.

After traffic with errors (/status/500, injected faults) and slow requests (/delay/0.3):
- every recording rule and every dashboard query parses and returns data, unless it reads a
  metric that docs/monitoring.md lists as coming from another exporter (then it must parse and
  be empty here, which is exactly what the list claims);
- every alert expression parses, and Prometheus reports every rule group healthy;
- every metric name used by a dashboard or a rule is exposed by the service, recorded by a rule,
  made by Prometheus itself, or listed in docs/monitoring.md;
- the SLO series show the errors and slow requests that were sent.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.test_grafana import dashboard_queries
from tests.deploy.test_prometheus import (
    K8S_CONFIG,
    RULES_DIR,
    alert_rules,
    external_metrics,
    metric_names,
    recording_rules,
)
from tests.integration.conftest import ServerProcess, free_port
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.process import LoggedProcess

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
SCRAPE_INTERVAL = 1  # seconds
# What Grafana puts in for its variables here. $__rate_interval is max(4 x scrape interval,
# $__interval + scrape interval): at a 1 s scrape and a 9 s panel step (a short time range),
# 10 s. Above the 4 s floor, so a scrape delayed by a busy machine cannot empty a rate().
SUBSTITUTIONS = {
    "$__rate_interval": f"{9 + SCRAPE_INTERVAL}s",
    "$namespace": "pleno",
    "$route": ".*",
}
# Made by Prometheus itself, not scraped.
PROMETHEUS_MADE = {"up", "ALERTS", "ALERTS_FOR_STATE"}
POD = "pleno-7d9f8-abcde"


def substitute(expr: str) -> str:
    for variable, value in SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def pod_target(name: str, ip: str, port: int, **extra: str) -> dict[str, Any]:
    """One file_sd target group shaped like Kubernetes pod discovery's output."""
    labels = {
        "__meta_kubernetes_namespace": "pleno",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_ip": ip,
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_node_name": "node-a",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "pleno",
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": "api",
        "__meta_kubernetes_pod_label_pod_template_hash": "7d9f8",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port),
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
        **extra,
    }
    # Discovery's own address is pod IP + container port; the annotations must override it.
    address = f"[{ip}]:9" if ":" in ip else f"{ip}:9"
    return {"targets": [address], "labels": labels}


class Prometheus(LoggedProcess):
    def __init__(self, binary: str, workdir: Path, pleno_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ipv6_port = free_port()  # nothing listens there; only the address is checked
        targets = [
            pod_target(POD, "127.0.0.1", pleno_port),
            pod_target("pleno-ipv6", "::1", self.ipv6_port),
            # A finished migration Job pod: still annotated, must be dropped.
            pod_target(
                "pleno-migrate-x1",
                "127.0.0.1",
                pleno_port,
                __meta_kubernetes_pod_phase="Succeeded",
            ),
            # A pod without the scrape annotation: not a target.
            pod_target(
                "postgres-0",
                "127.0.0.1",
                pleno_port,
                __meta_kubernetes_pod_annotation_prometheus_io_scrape="false",
            ),
        ]
        (workdir / "pods.json").write_text(json.dumps(targets))
        production = yaml.safe_load(K8S_CONFIG.read_text())
        (pods_job,) = [
            j for j in production["scrape_configs"] if j["job_name"] == "kubernetes-pods"
        ]
        del pods_job["kubernetes_sd_configs"]
        pods_job["file_sd_configs"] = [{"files": [str(workdir / "pods.json")]}]
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_INTERVAL}s",
                "scrape_timeout": f"{SCRAPE_INTERVAL}s",
                "evaluation_interval": f"{SCRAPE_INTERVAL}s",
            },
            "rule_files": [str(RULES_DIR / "*.yml")],
            "scrape_configs": [
                {
                    "job_name": "prometheus",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}],
                },
                pods_job,
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        super().__init__(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--enable-feature=exemplar-storage",
            ],
            workdir / "prometheus.log",
        )

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"Prometheus not ready:\n{self.log}")

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.url}/api/v1/query", data={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{expr}\n{body.get('error')}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            assert time.monotonic() < deadline, f"no data for {expr}"
            time.sleep(0.25)


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package prometheus)")
    return binary


@pytest.fixture
def running(
    prometheus_binary: str, start_server: StartServer, receiver: OtlpReceiver, tmp_path: Path
) -> Iterator[tuple[ServerProcess, Prometheus]]:
    server = start_server(
        # Some injected 500/503 too: the chaos counters get samples, and they burn the SLO.
        PLENO_CHAOS_ERROR_RATE="0.03",
        PLENO_CHAOS_SEED="6",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_TRACES_SAMPLER="always_on",
    )
    server.wait_ready()
    prometheus = Prometheus(prometheus_binary, tmp_path, server.port)
    try:
        prometheus.wait_ready()
        yield server, prometheus
    finally:
        prometheus.stop()


def drive_traffic(base: str, seconds: float) -> int:
    """API traffic with successes, client errors, server errors and slow answers."""
    sent = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, timeout=10) as client, ThreadPoolExecutor(4) as pool:
        round_ = 0
        while time.monotonic() < deadline:
            slow = [pool.submit(client.get, "/delay/0.3") for _ in range(2)]
            created = client.post("/api/v1/items", json={"name": f"live-{round_}", "quantity": 1})
            item = created.headers.get("location", "/api/v1/items/1")
            for path in (
                "/api/v1/items",
                item,
                "/api/v1/items/999999",  # 404 on a matched route
                "/api/v1/work?cpu_ms=2",
                "/status/500",
                "/status/503",
                "/no/such/path",  # <unmatched>
                "/version",
            ):
                client.get(path)
            client.get("/ready")
            for future in slow:
                future.result()
            sent += 12
            round_ += 1
    return sent


def test_rules_and_dashboards_against_a_real_prometheus(
    running: tuple[ServerProcess, Prometheus],
) -> None:
    server, prometheus = running
    sent = drive_traffic(server.url, seconds=8)
    assert sent > 100

    # --- discovery and relabelling, by prometheus.yml's own kubernetes-pods job ---------------
    targets = prometheus.api("targets")
    active = {
        target["labels"].get("pod"): target
        for target in targets["activeTargets"]
        if target["scrapePool"] == "kubernetes-pods"
    }
    assert set(active) == {POD, "pleno-ipv6"}, "the Succeeded and the unannotated pod are dropped"
    live = active[POD]
    assert live["scrapeUrl"] == f"http://127.0.0.1:{server.port}/metrics"
    assert live["labels"] == {
        "job": "kubernetes-pods",
        "instance": f"127.0.0.1:{server.port}",
        "namespace": "pleno",
        "pod": POD,
        "node": "node-a",
        "app": "pleno",
        "component": "api",
    }, "pod-template-hash and other pod labels are not copied"
    assert active["pleno-ipv6"]["scrapeUrl"] == f"http://[::1]:{prometheus.ipv6_port}/metrics"
    dropped = {
        t["discoveredLabels"]["__meta_kubernetes_pod_name"] for t in targets["droppedTargets"]
    }
    assert {"pleno-migrate-x1", "postgres-0"} <= dropped

    # --- the rules loaded and evaluate without error --------------------------------------------
    prometheus.wait_for('namespace_slo:pleno_slo_error_budget_remaining:ratio30d{slo="latency"}')
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(recording_rules()) + len(alert_rules())
    unhealthy = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not unhealthy, unhealthy

    external = external_metrics()
    exposed = set(prometheus.api("label/__name__/values", **{"match[]": f'{{pod="{POD}"}}'}))
    recorded = {rule["record"] for rule in recording_rules()}
    for rule in recording_rules():
        assert prometheus.query(rule["expr"]), f"recording rule {rule['record']} has no data"
        assert prometheus.query(rule["record"]), f"{rule['record']} was not recorded"
    for rule in alert_rules():
        prometheus.query(rule["expr"])  # parses and evaluates

    # --- every dashboard query parses; it has data unless it reads another exporter's metric ----
    empty_without_reason = []
    for uid, label, expr in dashboard_queries():
        if expr.startswith("label_values("):
            # A Grafana variable query: label_values(<selector>, <label>).
            selector, _, name = expr.removeprefix("label_values(").removesuffix(")").rpartition(",")
            values = prometheus.api("series", **{"match[]": substitute(selector)})
            assert {series[name.strip()] for series in values}, (uid, label)
            continue
        names = metric_names(expr)
        foreign = names & set(external)
        result = prometheus.query(substitute(expr))
        if foreign:
            assert not result, f"{label} reads {foreign}, listed as absent here, yet has data"
        elif not result:
            empty_without_reason.append(f"{uid} / {label}: {expr}")
    assert not empty_without_reason, "\n".join(empty_without_reason)

    # --- every metric name is accounted for ----------------------------------------------------
    used: set[str] = set()
    for _, _, expr in dashboard_queries():
        used |= metric_names(expr)
    for rule in recording_rules() + alert_rules():
        used |= metric_names(rule["expr"])
    unknown = used - exposed - recorded - PROMETHEUS_MADE - set(external)
    assert not unknown, f"neither exposed, recorded nor documented: {sorted(unknown)}"
    assert not (set(external) & exposed), "a metric listed as external is exposed by the service"
    assert set(external) <= used, f"listed but unused: {sorted(set(external) - used)}"

    # --- the SLO series saw what was sent --------------------------------------------------------
    def value(expr: str) -> float:
        (sample,) = prometheus.query(expr)
        return float(sample["value"][1])

    # /status/500 and /status/503 are 2 of every 11 API requests: far above a 0.1% budget.
    assert value('namespace_slo:pleno_slo_burn_rate:ratio_rate5m{slo="availability"}') > 14.4
    # 2 of every 11 took 0.3 s, above the 0.25 s threshold.
    assert value('namespace_slo:pleno_slo_errors:ratio_rate5m{slo="latency"}') > 0.1
    routes = {
        sample["metric"]["route"]
        for sample in prometheus.query("namespace_route_status_class:pleno_http_requests:rate5m")
    }
    assert {"/status/{code}", "/delay/{seconds}", "<unmatched>", "/api/v1/items"} <= routes
    # The scrape and the probes are counted apart from the API (docs/telemetry.md).
    assert not routes & {"/metrics", "/health", "/ready"}
    assert value('sum(pleno_chaos_injected_errors_total{namespace="pleno"})') > 0

    # --- exemplars: the trace ids Grafana links to Jaeger ---------------------------------------
    now = time.time()
    exemplars = prometheus.api(
        "query_exemplars",
        query="pleno_http_request_duration_seconds_bucket",
        start=str(now - 120),
        end=str(now),
    )
    trace_ids = {e["labels"].get("trace_id") for s in exemplars for e in s["exemplars"]}
    assert trace_ids
    assert all(len(trace_id or "") == 32 for trace_id in trace_ids)
