"""The tracing stack's configuration: the OTel Collector gateway and Jaeger, files and renders.

No Collector or Jaeger binary runs on these machines, so this checks what a wrong edit would
break, against the real rendered objects (tests/support/manifests.py) and the contract:
- every component a pipeline names is defined, and every defined component is used;
- memory_limiter is first and its limits follow from the rendered container memory limit;
- k8sattributes runs before batch, and the hygiene processors drop credential attributes;
- every port the configs listen on is a container port and a Service port, and the probes hit
  the health extension;
- the spanmetrics buckets are the service's own SLO buckets (docs/telemetry.md);
- the Collector reaches Jaeger on the port Jaeger's config listens on;
- the other namespaces' configs (Prometheus' scrape targets, Grafana's JAEGER_URL, Pleno's egress
  NetworkPolicy) name these Services and ports, and this stack's NetworkPolicies admit the real
  client pods by their rendered labels.
tests/deploy/test_kustomize.py runs kubernetes-validate and checkov on the same renders.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import (
    DEPLOY,
    K8S,
    ROOT,
    Manifest,
    container_env,
    one,
    pod_spec,
    select,
)
from tests.support.manifests import render as render_kustomization

COLLECTOR_DIR = DEPLOY / "observability" / "otel-collector"
JAEGER_DIR = DEPLOY / "observability" / "jaeger"
STACK = K8S / "stacks" / "tracing"
NAMESPACE = "tracing"
COMPOSE_OBSERVABILITY = ROOT / "compose.observability.yaml"
TELEMETRY_DOC = ROOT / "docs" / "telemetry.md"

# The contract (COMMON brief): Service otel-collector and Service jaeger ports.
COLLECTOR_SERVICE_PORTS = {4317, 4318, 8888, 8889, 13133}
JAEGER_SERVICE_PORTS = {16686, 4317, 4318}

# The ratios of docs/tracing.md "Memory" (memory_limiter and GOMEMLIMIT from the memory limit).
LIMIT_SHARE = 0.75
SPIKE_SHARE = 0.25
GOMEMLIMIT_SHARE = 0.80

KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return load(COLLECTOR_DIR / "config.yaml")


@pytest.fixture(scope="module")
def jaeger_config() -> dict[str, Any]:
    return load(JAEGER_DIR / "config.yaml")


@pytest.fixture(scope="module")
def stack() -> list[Manifest]:
    return render_kustomization(STACK)


def _container(docs: list[Manifest], name: str) -> Manifest:
    containers: list[Manifest] = pod_spec(one(docs, "Deployment", name))["containers"]
    assert len(containers) == 1, f"{name}: one container expected"
    return containers[0]


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity (512Mi, 1G, 536870912) in MiB."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?|)", quantity)
    assert match, f"unreadable Kubernetes memory quantity {quantity!r}"
    factor = {"": 2**-20, "Ki": 2**-10, "Mi": 1.0, "Gi": 2**10, "Ti": 2**20}
    factor |= {"K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "T": 1e12 / 2**20}
    return float(match.group(1)) * factor[match.group(2)]


def gomemlimit_mebibytes(value: str) -> float:
    """GOMEMLIMIT (Go's runtime/debug syntax: bytes, or B/KiB/MiB/GiB/TiB) in MiB."""
    match = re.fullmatch(r"(\d+)(B|KiB|MiB|GiB|TiB)?", value)
    assert match, f"GOMEMLIMIT={value!r} is not in Go's syntax"
    factor = {None: 2**-20, "B": 2**-20, "KiB": 2**-10, "MiB": 1.0, "GiB": 2**10, "TiB": 2**20}
    return int(match.group(1)) * factor[match.group(2)]


def compose_mebibytes(size: str) -> float:
    """A compose byte value (512M, 1g, 256mb) in MiB: Docker's units are binary in any case."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", size.lower())
    assert match, f"unreadable compose size {size!r}"
    factor = {"": 2**-20, "k": 2**-10, "m": 1.0, "g": 2**10, "t": 2**20}
    return float(match.group(1)) * factor[match.group(2)]


def port_of(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def host_of(endpoint: str) -> str:
    return endpoint.rpartition(":")[0]


# --- the Collector configuration ----------------------------------------------------------------


def _pipeline_references(config: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(pipeline, role, component) for every component a pipeline names."""
    for pipeline, spec in config["service"]["pipelines"].items():
        for role in ("receivers", "processors", "exporters"):
            for component in spec.get(role, []):
                yield pipeline, role, component


def _defined(config: dict[str, Any], kind: str) -> set[str]:
    return set(config.get(kind) or {})


@pytest.mark.parametrize("path", [COLLECTOR_DIR / "config.yaml", JAEGER_DIR / "config.yaml"])
def test_every_pipeline_component_is_defined_and_every_defined_one_is_used(path: Path) -> None:
    config = load(path)
    connectors = _defined(config, "connectors")
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    connector_roles: dict[str, set[str]] = {name: set() for name in connectors}
    for pipeline, role, component in _pipeline_references(config):
        if component in connectors and role in ("receivers", "exporters"):
            connector_roles[component].add(role)
            used["connectors"].add(component)
            continue
        assert component in _defined(config, role), f"{pipeline}: {role} {component} is not defined"
        used[role].add(component)
    for extension in config["service"].get("extensions", []):
        assert extension in _defined(config, "extensions"), f"extension {extension} not defined"
        used["extensions"].add(extension)
    for kind in KINDS:
        unused = _defined(config, kind) - used[kind]
        assert not unused, f"{path.name}: {kind} defined but in no pipeline: {sorted(unused)}"
    for name, roles in connector_roles.items():
        # A connector joins two pipelines: it must leave one (exporter) and enter another.
        assert roles == {"receivers", "exporters"}, f"connector {name} is used as {roles}"


def test_memory_limiter_is_first_and_batch_last_after_k8sattributes(
    collector: dict[str, Any],
) -> None:
    for name, pipeline in collector["service"]["pipelines"].items():
        processors: list[str] = pipeline["processors"]
        assert processors[0] == "memory_limiter", f"{name}: {processors}"
        assert processors[-1] == "batch", f"{name}: batching is the last step, got {processors}"
        # After batching, one batch mixes several pods' data and the connection is no longer
        # the sender's: k8sattributes must see the data as it arrived.
        assert "k8sattributes" in processors, f"{name}: {processors}"
        assert processors.index("k8sattributes") < processors.index("batch")


def test_memory_limits_follow_from_the_rendered_container_limit(
    collector: dict[str, Any], stack: list[Manifest]
) -> None:
    container = _container(stack, "otel-collector")
    limit = mebibytes(container["resources"]["limits"]["memory"])
    limiter = collector["processors"]["memory_limiter"]
    assert limiter["limit_mib"] == math.floor(limit * LIMIT_SHARE)
    assert limiter["spike_limit_mib"] == math.floor(limiter["limit_mib"] * SPIKE_SHARE)
    gomemlimit = container_env(container)["GOMEMLIMIT"]
    assert gomemlimit == f"{math.floor(limit * GOMEMLIMIT_SHARE)}MiB"
    soft = limiter["limit_mib"] - limiter["spike_limit_mib"]
    # Data is refused first, then GC is forced, then the Go runtime's own limit, then the OOM kill.
    assert 0 < soft < limiter["limit_mib"] < gomemlimit_mebibytes(gomemlimit) < limit
    # As docs/tracing.md says: the memory request sits below the soft limit, so a gateway that
    # stays within its request never sheds load.
    assert mebibytes(container["resources"]["requests"]["memory"]) < soft


def test_compose_runs_the_collector_with_the_same_memory_arithmetic(stack: list[Manifest]) -> None:
    service = load(COMPOSE_OBSERVABILITY)["services"]["otel-collector"]
    container = _container(stack, "otel-collector")
    compose_limit = compose_mebibytes(service["deploy"]["resources"]["limits"]["memory"])
    assert compose_limit == mebibytes(container["resources"]["limits"]["memory"])
    assert service["environment"]["GOMEMLIMIT"] == container_env(container)["GOMEMLIMIT"]


def test_the_config_needs_no_environment_variables(collector: dict[str, Any]) -> None:
    # One file for Kubernetes and compose: names that resolve in both, nothing to interpolate.
    text = (COLLECTOR_DIR / "config.yaml").read_text()
    assert "${" not in text


def test_receivers_and_servers_listen_on_all_interfaces(collector: dict[str, Any]) -> None:
    endpoints = [
        collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        collector["exporters"]["prometheus"]["endpoint"],
        collector["extensions"]["health_check"]["endpoint"],
    ]
    every_interface = "0.0.0.0"  # noqa: S104 - what the config must say, so pods can connect
    assert [host_of(endpoint) for endpoint in endpoints] == [every_interface] * len(endpoints)
    telemetry = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert telemetry["prometheus"]["host"] == every_interface


def collector_listen_ports(config: dict[str, Any]) -> dict[str, int]:
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    return {
        "otlp-grpc": port_of(config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]),
        "otlp-http": port_of(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]),
        "own-metrics": int(reader["prometheus"]["port"]),
        "prometheus-exporter": port_of(config["exporters"]["prometheus"]["endpoint"]),
        "health": port_of(config["extensions"]["health_check"]["endpoint"]),
    }


def _service_target_ports(service: Manifest, container: Manifest) -> dict[int, int]:
    """Service port -> the container port it really reaches (named targetPorts resolved)."""
    by_name = {port["name"]: port["containerPort"] for port in container["ports"]}
    resolved = {}
    for port in service["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        resolved[port["port"]] = by_name[target] if isinstance(target, str) else target
    return resolved


def test_collector_ports_agree_with_the_deployment_and_the_service(
    collector: dict[str, Any], stack: list[Manifest]
) -> None:
    listen = collector_listen_ports(collector)
    assert listen == {
        "otlp-grpc": 4317,
        "otlp-http": 4318,
        "own-metrics": 8888,
        "prometheus-exporter": 8889,
        "health": 13133,
    }
    container = _container(stack, "otel-collector")
    service = one(stack, "Service", "otel-collector")
    targets = _service_target_ports(service, container)
    assert set(targets) == COLLECTOR_SERVICE_PORTS
    assert targets == {port: port for port in listen.values()}, "a Service port misses its server"
    assert {port["containerPort"] for port in container["ports"]} == set(listen.values())
    pod_labels = one(stack, "Deployment", "otel-collector")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_probes_hit_the_health_check_extension(
    collector: dict[str, Any], stack: list[Manifest]
) -> None:
    container = _container(stack, "otel-collector")
    by_name = {port["name"]: port["containerPort"] for port in container["ports"]}
    health_port = collector_listen_ports(collector)["health"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert by_name.get(get["port"], get["port"]) == health_port, probe
        assert get["path"] == collector["extensions"]["health_check"].get("path", "/")


def test_k8sattributes_has_read_only_cluster_rbac(stack: list[Manifest]) -> None:
    deployment = one(stack, "Deployment", "otel-collector")
    account = pod_spec(deployment)["serviceAccountName"]
    service_account = one(stack, "ServiceAccount", account)
    binding = one(stack, "ClusterRoleBinding", "otel-collector-k8sattributes")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]
    assert service_account["metadata"]["namespace"] == NAMESPACE
    role = one(stack, "ClusterRole", binding["roleRef"]["name"])
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    for needed in [("", "pods"), ("", "namespaces"), ("apps", "replicasets")]:
        assert granted.get(needed) == {"get", "watch", "list"}, needed
    assert all(verbs <= {"get", "watch", "list"} for verbs in granted.values())


# Keys that must never reach a trace backend, and keys the dashboards and spanmetrics need.
SECRET_KEYS = [
    "http.request.header.authorization",
    "http.request.header.Authorization",
    "authorization",
    "Authorization",
    "http.request.header.proxy-authorization",
    "pleno.admin_token",
    "admin.token",
    "ADMIN-TOKEN",
    "http.request.header.cookie",
    "db.password",
]
KEPT_KEYS = [
    "http.route",
    "http.request.method",
    "http.response.status_code",
    "url.path",
    "url.full",
    "db.statement",
    "db.system",
    "service.name",
    "k8s.pod.name",
    "http.request.header.user-agent",
]


def _deletes(actions: list[dict[str, Any]], key: str) -> bool:
    for action in actions:
        if action["action"] != "delete":
            continue
        if action.get("key") == key:
            return True
        # Go RE2 and Python agree on this subset (groups, alternation, (?i), .*).
        if "pattern" in action and re.fullmatch(action["pattern"], key):
            return True
    return False


@pytest.mark.parametrize("processor", ["attributes/hygiene", "resource/hygiene"])
def test_hygiene_drops_credentials_and_keeps_what_dashboards_use(
    collector: dict[str, Any], processor: str
) -> None:
    spec = collector["processors"][processor]
    actions = spec.get("actions") or spec["attributes"]
    for key in SECRET_KEYS:
        assert _deletes(actions, key), f"{processor} keeps {key}"
    for key in KEPT_KEYS:
        assert not _deletes(actions, key), f"{processor} drops {key}"
    traces = collector["service"]["pipelines"]["traces"]["processors"]
    assert processor in traces


def _slo_buckets_from_the_telemetry_contract() -> list[float]:
    match = re.search(r"Buckets: ([0-9., *]+) s\.", TELEMETRY_DOC.read_text())
    assert match, "docs/telemetry.md no longer lists the histogram buckets"
    return [float(value.strip(" *")) for value in match.group(1).split(",")]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, duration
    return float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def test_spanmetrics_are_red_metrics_on_the_slo_buckets(collector: dict[str, Any]) -> None:
    spanmetrics = collector["connectors"]["spanmetrics"]
    buckets = [_seconds(str(b)) for b in spanmetrics["histogram"]["explicit"]["buckets"]]
    assert buckets == pytest.approx(_slo_buckets_from_the_telemetry_contract())
    assert spanmetrics["histogram"]["unit"] == "s"  # *_duration_seconds, Prometheus style
    assert spanmetrics["namespace"] == "traces.span.metrics"  # docs/tracing.md metric names
    assert spanmetrics["exemplars"]["enabled"] is True
    dimensions = {d["name"] for d in spanmetrics["dimensions"]}
    assert {"http.route", "http.request.method", "http.response.status_code"} <= dimensions
    # Per replica series (else each pod's counter overwrites the others'), and gone pods expire.
    assert "k8s.pod.name" in dimensions
    assert _seconds(str(spanmetrics["metrics_expiration"])) > 0
    metrics = collector["service"]["pipelines"]["metrics"]
    assert "spanmetrics" in metrics["receivers"]
    assert "prometheus" in metrics["exporters"]
    assert collector["exporters"]["prometheus"]["enable_open_metrics"] is True  # exemplars


def test_traces_go_to_jaeger_on_the_port_jaeger_listens_on(
    collector: dict[str, Any], jaeger_config: dict[str, Any], stack: list[Manifest]
) -> None:
    exporter = collector["exporters"]["otlp/jaeger"]
    assert exporter["endpoint"] == "jaeger:4317"  # short name: same namespace, same compose net
    assert "otlp/jaeger" in collector["service"]["pipelines"]["traces"]["exporters"]
    assert "debug" in collector["service"]["pipelines"]["traces"]["exporters"]
    jaeger_grpc = jaeger_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert port_of(jaeger_grpc) == port_of(exporter["endpoint"])
    jaeger_service = one(stack, "Service", host_of(exporter["endpoint"]))
    targets = _service_target_ports(jaeger_service, _container(stack, "jaeger"))
    assert targets[port_of(exporter["endpoint"])] == port_of(jaeger_grpc)


# --- Jaeger -------------------------------------------------------------------------------------


def test_jaeger_keeps_a_bounded_in_memory_store(jaeger_config: dict[str, Any]) -> None:
    extensions = jaeger_config["extensions"]
    backends = extensions["jaeger_storage"]["backends"]
    store = extensions["jaeger_query"]["storage"]["traces"]
    assert jaeger_config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == store
    cap = backends[store]["memory"]["max_traces"]
    assert isinstance(cap, int)
    assert 0 < cap <= 50_000  # sized for the 512Mi limit: a handful of KiB per Pleno trace


def test_jaeger_ports_agree_with_the_deployment_and_the_service(
    jaeger_config: dict[str, Any], stack: list[Manifest]
) -> None:
    container = _container(stack, "jaeger")
    targets = _service_target_ports(one(stack, "Service", "jaeger"), container)
    assert set(targets) >= JAEGER_SERVICE_PORTS
    ui = port_of(jaeger_config["extensions"]["jaeger_query"]["http"]["endpoint"])
    grpc = port_of(jaeger_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])
    http = port_of(jaeger_config["receivers"]["otlp"]["protocols"]["http"]["endpoint"])
    assert (targets[16686], targets[4317], targets[4318]) == (ui, grpc, http)
    health = jaeger_config["extensions"]["healthcheckv2"]["http"]
    by_name = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert by_name[get["port"]] == port_of(health["endpoint"])
        assert get["path"] == health["status"]["path"]


# --- both workloads ----------------------------------------------------------------------------


def test_everything_lands_in_the_tracing_namespace(stack: list[Manifest]) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "Namespace"}
    for doc in stack:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


@pytest.mark.parametrize("name", ["otel-collector", "jaeger"])
def test_workloads_are_restricted_pinned_and_bounded(stack: list[Manifest], name: str) -> None:
    deployment = one(stack, "Deployment", name)
    pod = pod_spec(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        image = container["image"]
        tag = image.rpartition(":")[2]
        assert ":" in image, image
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{image}: pin a release tag"
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), bound
        assert {"livenessProbe", "readinessProbe"} <= set(container)
        assert "GOMEMLIMIT" in container_env(container)
    # The ConfigMap generated from the one config file is what the pod mounts.
    config_maps = {doc["metadata"]["name"] for doc in select(stack, "ConfigMap")}
    mounted = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    assert mounted
    assert mounted <= config_maps


def test_config_maps_hold_the_files_byte_for_byte(stack: list[Manifest]) -> None:
    expected = {
        "otel-collector-config": (COLLECTOR_DIR / "config.yaml").read_text(),
        "jaeger-config": (JAEGER_DIR / "config.yaml").read_text(),
    }
    for prefix, text in expected.items():
        [config_map] = [
            doc
            for doc in select(stack, "ConfigMap")
            if doc["metadata"]["name"].startswith(prefix + "-")
        ]
        assert config_map["data"] == {"config.yaml": text}


def test_the_namespace_enforces_pod_security_restricted(stack: list[Manifest]) -> None:
    labels = one(stack, "Namespace", NAMESPACE)["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


@pytest.mark.parametrize("page", ["architecture.md", "tracing.md"])
def test_the_docs_link_only_to_files_that_exist(page: str) -> None:
    text = (ROOT / "docs" / page).read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        if "://" not in link:
            assert (ROOT / "docs" / link).resolve().exists(), f"{page}: broken link {link}"
    # Every repository path the page names in backticks exists, so the docs cannot drift.
    for path in re.findall(r"`((?:deploy|tests|docs)/[\w./-]+?)`", text):
        if "*" not in path and "<" not in path:
            assert (ROOT / path).exists(), f"{page}: names {path}, which does not exist"


def _span_metric_names(collector: dict[str, Any]) -> set[str]:
    """What the prometheus exporter serves for the spanmetrics connector's two metrics."""
    spanmetrics = collector["connectors"]["spanmetrics"]
    prefix = spanmetrics["namespace"].replace(".", "_")
    unit = {"s": "seconds", "ms": "milliseconds"}[spanmetrics["histogram"]["unit"]]
    duration = f"{prefix}_duration_{unit}"
    return {f"{prefix}_calls_total"} | {f"{duration}_{s}" for s in ("bucket", "sum", "count")}


def test_dashboards_and_rules_query_span_metrics_that_exist(collector: dict[str, Any]) -> None:
    served = _span_metric_names(collector)
    prefix = collector["connectors"]["spanmetrics"]["namespace"].replace(".", "_")
    sources = [
        *(DEPLOY / "observability" / "grafana" / "dashboards").glob("*.json"),
        *(DEPLOY / "observability" / "prometheus" / "rules").glob("*.yml"),
    ]
    assert sources
    for path in sources:
        for name in set(re.findall(rf"\b{prefix}_\w+", path.read_text())):
            assert name in served, f"{path.name} queries {name}; the Collector serves {served}"


# --- the other namespaces reach the tracing stack as it really is -------------------------------

FQDN = re.compile(r"^([a-z0-9-]+)\.tracing\.svc\.cluster\.local:(\d+)$")


def _service_ports(stack: list[Manifest], name: str) -> set[int]:
    return {port["port"] for port in one(stack, "Service", name)["spec"]["ports"]}


def test_kubernetes_prometheus_scrapes_tracing_services_on_their_ports(
    stack: list[Manifest],
) -> None:
    config = load(DEPLOY / "observability" / "prometheus" / "prometheus.yml")
    scraped = {
        (match.group(1), int(match.group(2)))
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
        if (match := FQDN.match(target))
    }
    assert {("otel-collector", 8888), ("otel-collector", 8889)} <= scraped
    for service, port in scraped:
        assert port in _service_ports(stack, service), f"{service}:{port}"


def test_kubernetes_grafana_reaches_the_jaeger_service(stack: list[Manifest]) -> None:
    [grafana] = [
        doc
        for doc in render_kustomization(DEPLOY / "observability" / "grafana")
        if doc["kind"] == "Deployment"
    ]
    url = container_env(pod_spec(grafana)["containers"][0])["JAEGER_URL"]
    match = FQDN.match(url.removeprefix("http://"))
    assert match, url
    assert match.group(1) == "jaeger"
    assert int(match.group(2)) in _service_ports(stack, "jaeger")


def _pod_labels(path: Path, kind: str, name: str) -> dict[str, str]:
    workload = one(render_kustomization(path), kind, name)
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def _admits(rule: Manifest, namespace: str, labels: dict[str, str], port: int) -> bool:
    ports = {p["port"] for p in rule.get("ports", [])}
    if ports and port not in ports:
        return False
    if "from" not in rule:
        return True  # no peers listed: every source is admitted on these ports
    for peer in rule["from"]:
        namespaces = peer.get("namespaceSelector")
        pods = peer.get("podSelector")
        if namespaces is None and namespace != NAMESPACE:
            continue  # a bare podSelector means this policy's own namespace
        wanted_ns = (namespaces or {}).get("matchLabels", {})
        if wanted_ns and wanted_ns != {"kubernetes.io/metadata.name": namespace}:
            continue
        if pods is None or pods.get("matchLabels", {}).items() <= labels.items():
            return True
    return False


@pytest.mark.parametrize(
    ("policy", "namespace", "source", "port"),
    [
        # Pleno (any namespace really; the contract puts it in `pleno`) sends OTLP/HTTP.
        ("otel-collector", "pleno", (K8S / "base", "Deployment", "pleno"), 4318),
        # Prometheus scrapes the gateway's own metrics and its span metrics.
        (
            "otel-collector",
            "monitoring",
            (DEPLOY / "observability" / "prometheus", "Deployment", "prometheus"),
            8888,
        ),
        (
            "otel-collector",
            "monitoring",
            (DEPLOY / "observability" / "prometheus", "Deployment", "prometheus"),
            8889,
        ),
        # Grafana queries Jaeger; the gateway sends spans to Jaeger.
        (
            "jaeger",
            "monitoring",
            (DEPLOY / "observability" / "grafana", "Deployment", "grafana"),
            16686,
        ),
        ("jaeger", NAMESPACE, (COLLECTOR_DIR, "Deployment", "otel-collector"), 4317),
    ],
)
def test_network_policies_admit_the_real_clients(
    stack: list[Manifest],
    policy: str,
    namespace: str,
    source: tuple[Path, str, str],
    port: int,
) -> None:
    labels = _pod_labels(*source)
    spec = one(stack, "NetworkPolicy", policy)["spec"]
    assert any(_admits(rule, namespace, labels, port) for rule in spec["ingress"]), (
        f"{policy} refuses {source[2]} from {namespace} on {port}"
    )


def test_the_pleno_egress_policy_lets_spans_out_to_the_gateway(stack: list[Manifest]) -> None:
    collector_labels = one(stack, "Deployment", "otel-collector")["spec"]["template"]["metadata"][
        "labels"
    ]
    overlay = render_kustomization(K8S / "overlays" / "minikube")
    allowed = False
    for network_policy in select(overlay, "NetworkPolicy"):
        for rule in network_policy["spec"].get("egress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            for peer in rule.get("to", []):
                ns = peer.get("namespaceSelector", {}).get("matchLabels", {})
                pods = peer.get("podSelector", {}).get("matchLabels", {})
                if (
                    ns == {"kubernetes.io/metadata.name": NAMESPACE}
                    and pods.items() <= collector_labels.items()
                    and 4318 in ports
                ):
                    allowed = True
    assert allowed, "no egress rule in the minikube overlay lets pleno reach otel-collector:4318"
