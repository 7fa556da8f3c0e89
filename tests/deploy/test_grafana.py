"""Grafana provisioning and dashboards.

- Datasources have fixed uids; Jaeger and Elasticsearch take their URLs from the environment
  ($JAEGER_URL, $ELASTICSEARCH_URL), and the Kubernetes Deployment sets both; Prometheus
  exemplars link to the Jaeger datasource by the trace id label the service really uses.
- `timeInterval` equals the scrape interval of both Prometheus configurations.
- Every dashboard is well-formed JSON with a unique uid and unique panel ids; every panel and
  target uses a provisioned datasource uid; every range in a query is `$__rate_interval`.
- The file provider's path is where Kubernetes mounts the dashboards ConfigMap.

tests/integration/test_prometheus_live.py runs every dashboard query against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_prometheus import COMPOSE_CONFIG, K8S_CONFIG
from tests.support.manifests import DEPLOY, K8S, Manifest, container_env, one, pod_spec, render

GRAFANA = DEPLOY / "observability" / "grafana"
DATASOURCE_FILES = sorted((GRAFANA / "provisioning" / "datasources").glob("*.yaml"))
PROVIDER_FILES = sorted((GRAFANA / "provisioning" / "dashboards").glob("*.yaml"))
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# The environment variables the datasources may reference; everything else is a literal `$$`.
ENVIRONMENT = {"JAEGER_URL", "ELASTICSEARCH_URL"}
# Grafana's own variables that a query may use, and the dashboard's template variables.
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range"}


def datasources() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in DATASOURCE_FILES:
        found += yaml.safe_load(path.read_text())["datasources"]
    return found


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in DASHBOARDS]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found += panel.get("panels", [])  # a collapsed row keeps its panels inside
    return found


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title and refId, PromQL) for every Prometheus query."""
    queries = []
    for dashboard in dashboards():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                label = f"{panel['title']} [{target['refId']}]"
                queries.append((dashboard["uid"], label, target["expr"]))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]
                text = query["query"] if isinstance(query, dict) else query
                queries.append((dashboard["uid"], f"variable {variable['name']}", text))
    return queries


def test_there_is_a_service_dashboard() -> None:
    assert [path.name for path in DASHBOARDS] == ["pleno-service.json"]


def test_datasources_have_fixed_uids_and_env_urls() -> None:
    by_uid = {source["uid"]: source for source in datasources()}
    assert set(by_uid) == {"prometheus", "jaeger", "elasticsearch"}
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["jaeger"]["url"] == "$JAEGER_URL"
    assert by_uid["elasticsearch"]["url"] == "$ELASTICSEARCH_URL"
    assert sum(source.get("isDefault", False) for source in datasources()) == 1


def test_exemplars_link_to_jaeger_by_the_services_trace_id_label() -> None:
    (destination,) = next(s for s in datasources() if s["uid"] == "prometheus")["jsonData"][
        "exemplarTraceIdDestinations"
    ]
    assert destination["datasourceUid"] == "jaeger"
    # The exemplar label the service attaches to its histogram (docs/telemetry.md).
    metrics_source = (Path(__file__).parents[2] / "src/pleno/observability/metrics.py").read_text()
    assert '{"trace_id": trace_id}' in metrics_source
    assert destination["name"] == "trace_id"


def test_cross_links_use_existing_uids() -> None:
    uids = {source["uid"] for source in datasources()}
    for source in datasources():
        text = json.dumps(source.get("jsonData", {}))
        for uid in re.findall(r'"datasourceUid": "([^"]+)"', text):
            assert uid in uids, (source["uid"], uid)


def test_only_the_documented_environment_is_interpolated() -> None:
    """Grafana expands $VAR in provisioning files; a Grafana variable must be written $$."""
    for path in DATASOURCE_FILES:
        for line in path.read_text().splitlines():
            code = line.split("#", 1)[0]
            for match in re.finditer(r"(?<!\$)\$(?!\$)\{?([A-Za-z_][A-Za-z0-9_.]*)", code):
                assert match.group(1) in ENVIRONMENT, f"{path.name}: {line.strip()}"


def _scrape_interval(path: Path) -> str:
    interval: str = yaml.safe_load(path.read_text())["global"]["scrape_interval"]
    return interval


def test_time_interval_matches_the_scrape_interval() -> None:
    prometheus = next(source for source in datasources() if source["uid"] == "prometheus")
    time_interval = prometheus["jsonData"]["timeInterval"]
    assert time_interval == _scrape_interval(K8S_CONFIG) == _scrape_interval(COMPOSE_CONFIG)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_ids_and_datasources(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    uids = {source["uid"] for source in datasources()}
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]
    for variable in dashboard["templating"]["list"]:
        if "datasource" in variable:
            assert variable["datasource"]["uid"] in uids, variable["name"]


def test_dashboard_uids_are_unique() -> None:
    uids = [dashboard["uid"] for dashboard in dashboards()]
    assert len(uids) == len(set(uids))
    assert all(uids)


def test_every_range_is_the_rate_interval() -> None:
    for uid, label, expr in dashboard_queries():
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", (uid, label, expr)
        for function in ("rate", "increase", "irate"):
            if re.search(rf"\b{function}\(", expr):
                assert "[$__rate_interval]" in expr, (uid, label, expr)


def test_queries_use_only_known_variables() -> None:
    for dashboard in dashboards():
        declared = {variable["name"] for variable in dashboard["templating"]["list"]}
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
                assert used <= declared | GRAFANA_VARIABLES, (panel["title"], used)


def test_the_service_dashboard_covers_the_issue() -> None:
    """RED per route, a latency heatmap, CPU and memory against requests and limits, replicas
    against the HPA, SLO budget and burn rates, readiness and the database pool."""
    (dashboard,) = dashboards()
    text = json.dumps([panel.get("targets", []) for panel in panels(dashboard)])
    kinds = {panel["type"] for panel in panels(dashboard)}
    assert "heatmap" in kinds
    for needle in (
        "pleno_http_requests_total",
        "histogram_quantile",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "kube_pod_container_resource_requests",
        "kube_pod_container_resource_limits",
        "kube_horizontalpodautoscaler_spec_min_replicas",
        "kube_horizontalpodautoscaler_spec_max_replicas",
        "namespace_slo:pleno_slo_error_budget_remaining:ratio30d",
        "namespace_slo:pleno_slo_burn_rate:ratio_rate1h",
        "pleno_ready",
        "pleno_db_pool_connections",
    ):
        assert needle in text, needle
    # The latency panel asks for exemplars, so the trace links have something to show.
    assert any(
        target.get("exemplar") for panel in panels(dashboard) for target in panel.get("targets", [])
    )


def _provider_path() -> str:
    (provider,) = yaml.safe_load(PROVIDER_FILES[0].read_text())["providers"]
    assert provider["type"] == "file"
    path: str = provider["options"]["path"]
    return path


def test_kubernetes_mounts_the_repository_files_where_grafana_reads_them() -> None:
    stack = render(K8S / "stacks" / "monitoring")
    workload: Manifest = one(stack, "Deployment", "grafana")
    (container,) = pod_spec(workload)["containers"]
    volumes = {volume["name"]: volume for volume in pod_spec(workload)["volumes"]}
    mounted = {}
    for mount in container["volumeMounts"]:
        source = volumes[mount["name"]].get("configMap")
        if source:
            mounted[mount["mountPath"]] = one(stack, "ConfigMap", source["name"])["data"]
    assert mounted == {
        "/etc/grafana/provisioning/datasources": {p.name: p.read_text() for p in DATASOURCE_FILES},
        "/etc/grafana/provisioning/dashboards": {p.name: p.read_text() for p in PROVIDER_FILES},
        _provider_path(): {p.name: p.read_text() for p in DASHBOARDS},
    }
    env = container_env(container)
    assert env["JAEGER_URL"] == "http://jaeger.tracing.svc.cluster.local:16686"
    assert env["ELASTICSEARCH_URL"] == "http://elasticsearch.logging.svc.cluster.local:9200"


def _admits(peer: dict[str, Any], policy_namespace: str, namespace: str) -> bool:
    """Whether a NetworkPolicy peer admits some pod of `namespace` (any pod labels)."""
    if "namespaceSelector" in peer:
        labels = {"kubernetes.io/metadata.name": namespace}
        wanted = peer["namespaceSelector"].get("matchLabels", {})
        assert not peer["namespaceSelector"].get("matchExpressions"), "extend this helper"
        return all(labels.get(k) == v for k, v in wanted.items())
    return namespace == policy_namespace


def test_grafana_is_reachable_from_its_namespace_and_the_ingress_controller_only() -> None:
    """Anonymous viewers can query every datasource in Explore: no namespace-wide open door."""
    docs = render(K8S / "stacks" / "monitoring")
    policy = one(docs, "NetworkPolicy", "grafana")
    namespace = policy["metadata"]["namespace"]
    assert namespace == "monitoring"
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "grafana"
    assert policy["spec"]["policyTypes"] == ["Ingress"]

    def reachable(source: str) -> bool:
        return any(
            _admits(peer, namespace, source)
            and any(p["port"] == 3000 for p in rule.get("ports", []))
            for rule in policy["spec"]["ingress"]
            for peer in rule.get("from") or [{"namespaceSelector": {}}]
        )

    assert reachable("monitoring")
    assert reachable("ingress-nginx")
    for other in ("pleno", "logging", "tracing", "default", "kube-system"):
        assert not reachable(other), other
