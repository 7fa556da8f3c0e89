"""Prometheus configuration, rules and Kubernetes objects, checked with the real promtool.

- Every rule file passes `promtool check rules`, and `promtool test rules` passes on the unit
  tests in deploy/observability/prometheus/tests/, which show every alert on its firing and its
  quiet side and check the values of every recording rule.
- Both configurations pass `promtool check config`. Debian's promtool is built without
  Kubernetes discovery, so prometheus.yml is checked on a copy whose kubernetes_sd_configs are
  replaced by static_configs; the relabelling, jobs and rule files are still checked.
- The alerts carry what on-call needs (severity, summary, description with the value, a runbook
  that exists and has every section), and the SLO windows are the SRE workbook's.
- The rendered monitoring stack: least-privilege RBAC, restricted pods, the config maps hold
  the repository's files unchanged.

tests/integration/test_prometheus_live.py runs a real Prometheus against a real `pleno serve`.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from pleno.observability.metrics import DURATION_BUCKETS, SLO_THRESHOLDS_SECONDS
from tests.support.manifests import BASE, DEPLOY, K8S, ROOT, Manifest, one, pod_spec, render

PROMETHEUS_DIR = DEPLOY / "observability" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
K8S_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
COMPOSE_CONFIG = PROMETHEUS_DIR / "prometheus.compose.yml"
MONITORING_STACK = K8S / "stacks" / "monitoring"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"
RUNBOOKS = ROOT / "docs" / "runbooks"
# Alerts link to the runbook in the repository that ArgoCD deploys from (deploy/argocd).
RUNBOOK_BASE = "https://github.com/example/pleno/blob/main/"
RUNBOOK_SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation", "Verification")
SEVERITIES = {"page", "ticket"}
# The SRE workbook's multiwindow, multi-burn-rate table for a 30-day SLO.
BURN_WINDOWS = {
    ("1h", "5m", "14.4", "page"),
    ("6h", "30m", "6", "page"),
    ("1d", "2h", "3", "ticket"),
    ("3d", "6h", "1", "ticket"),
}
SLO_OBJECTIVES = {"availability": 0.999, "latency": 0.99}
LATENCY_THRESHOLD = "0.25"

Rule = dict[str, Any]


# --- shared helpers (the Grafana and live tests import these) ----------------------------------


def load_rules() -> list[Rule]:
    rules: list[Rule] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += group["rules"]
    return rules


def alert_rules() -> list[Rule]:
    return [rule for rule in load_rules() if "alert" in rule]


def recording_rules() -> list[Rule]:
    return [rule for rule in load_rules() if "record" in rule]


_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
    "and", "or", "unless", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (a small tokenizer, not a full parser).

    Strings, label matchers, range and grouping clauses and numbers are removed; what remains
    that is not a keyword or a function call is a metric name. The live test checks every name
    found against what really exists, so a mistake here fails loudly instead of hiding.
    """
    # A Grafana variable query, label_values(<selector>, <label>): the label is not a metric.
    text = re.sub(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", r"\1", expr, flags=re.S)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w:])\d+(?:\.\d*)?(?:[eE][+-]?\d+)?", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


@functools.cache
def external_metrics() -> dict[str, tuple[str, str]]:
    """docs/monitoring.md's table of metrics that come from another exporter.

    Name -> (exporter, why it has no data where the tests run).
    """
    section = MONITORING_DOC.read_text().split("## Metrics from other exporters", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Za-z_:][\w:]*)` \| ([^|]+?) \| ([^|]+?) \|$", section, re.M)
    return {name: (exporter, reason) for name, exporter, reason in rows}


def kebab(name: str) -> str:
    """PlenoHPAMaxedOut -> pleno-hpa-maxed-out."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    return found


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def assert_restricted(workload: Manifest) -> None:
    """Pod Security Standard "restricted", plus requests and limits and probes."""
    spec = pod_spec(workload)
    name = workload["metadata"]["name"]
    pod_context = spec.get("securityContext", {})
    assert pod_context.get("runAsNonRoot") is True, name
    assert isinstance(pod_context.get("runAsUser"), int), name
    assert pod_context["runAsUser"] > 0, name
    assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert "add" not in context["capabilities"], name
        assert context.get("privileged", False) is False, name
        assert context.get("runAsNonRoot", True) is True, name
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
        assert "readinessProbe" in container, name
        assert "livenessProbe" in container, name
        image = container["image"]
        assert ":" in image, image
        assert not image.endswith(":latest"), image


def _config(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _job(config: dict[str, Any], name: str) -> dict[str, Any]:
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == name]
    return job  # type: ignore[no-any-return]


def _targets(job: dict[str, Any]) -> set[str]:
    return {target for group in job.get("static_configs", []) for target in group["targets"]}


# --- rule files ---------------------------------------------------------------------------------


def test_rule_files_exist() -> None:
    assert {path.name for path in RULE_FILES} >= {
        "pleno-slo.yml",
        "pleno-red.yml",
        "pleno-operational.yml",
    }
    assert RULE_TESTS, "no promtool unit tests"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: path.name)
def test_promtool_check_rules(rule_file: Path) -> None:
    done = run([promtool(), "check", "rules", str(rule_file)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = run([promtool(), "test", "rules", *map(str, RULE_TESTS)], cwd=PROMETHEUS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_TESTS), done.stdout


def _unit_tests() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in RULE_TESTS:
        document = yaml.safe_load(path.read_text())
        for rule_file in document["rule_files"]:
            assert (path.parent / rule_file).resolve().parent == RULES_DIR.resolve()
        groups += document["tests"]
    return groups


def test_every_rule_file_is_unit_tested() -> None:
    tested = {
        (path.parent / rule_file).resolve()
        for path in RULE_TESTS
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]
    }
    assert tested == {path.resolve() for path in RULE_FILES}


def _static_labels(rule: Rule) -> dict[str, str]:
    return {key: str(value) for key, value in rule.get("labels", {}).items()}


def test_every_alert_rule_is_tested_firing_and_quiet() -> None:
    """Each alerting rule (an alert name plus its own labels, e.g. one burn-rate window) has a
    test where it fires and a test of the same alert where it does not."""
    cases = [case for group in _unit_tests() for case in group.get("alert_rule_test", [])]
    missing = []
    for rule in alert_rules():
        own = _static_labels(rule)
        outcomes = []
        for case in cases:
            if case["alertname"] != rule["alert"]:
                continue
            expected = [
                {key: str(value) for key, value in alert.get("exp_labels", {}).items()}
                for alert in case.get("exp_alerts") or []
            ]
            outcomes.append(any(own.items() <= labels.items() for labels in expected))
        if True not in outcomes or False not in outcomes:
            missing.append(
                f"{rule['alert']} {own}: fires={True in outcomes} quiet={False in outcomes}"
            )
    assert not missing, "\n".join(missing)


def test_every_recording_rule_value_is_tested() -> None:
    tested = " ".join(
        case["expr"] for group in _unit_tests() for case in group.get("promql_expr_test", [])
    )
    untested = {rule["record"] for rule in recording_rules()} - metric_names(tested)
    assert not untested, untested


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert "$value" in annotations["description"], f"{name}: the description shows no value"
        assert "$labels" in annotations["description"] or name == "PlenoMetricsAbsent", name
        url = annotations["runbook_url"]
        assert url == f"{RUNBOOK_BASE}docs/runbooks/{kebab(name)}.md", (name, url)
        assert (ROOT / url.removeprefix(RUNBOOK_BASE)).is_file(), f"{name}: {url} does not exist"


def _sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## +(.+)$", markdown, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("name", sorted({rule["alert"] for rule in alert_rules()}))
def test_runbook_has_every_section(name: str) -> None:
    sections = _sections((RUNBOOKS / f"{kebab(name)}.md").read_text())
    for title in RUNBOOK_SECTIONS:
        assert sections.get(title, "").strip(), f"{name}: no '{title}' section"
    diagnosis = sections["Diagnosis"]
    assert "kubectl " in diagnosis, f"{name}: no kubectl command"
    assert "```promql" in diagnosis, f"{name}: no PromQL query"
    assert "Kibana" in diagnosis, f"{name}: no Kibana query"
    # Each PromQL in a runbook reads only metrics that exist (service, rules or documented).
    known = _known_metric_names()
    # docs/telemetry.md lists the standard collectors as prefixes (`process_*`, `python_gc_*`).
    prefixes = tuple(re.findall(r"`(\w+_)\*`", _telemetry_doc()))
    for query in re.findall(r"```promql\n(.*?)```", diagnosis, re.S):
        unknown = {n for n in metric_names(query) - known if not n.startswith(prefixes)}
        assert not unknown, (name, unknown)


def _known_metric_names() -> set[str]:
    """Rule-recorded names, documented external names, and what docs/telemetry.md lists as
    exposed by the service (the live test checks the real exposition)."""
    exposed = set(re.findall(r"`(pleno_[a-z_]+)`", _telemetry_doc()))
    histogram = "pleno_http_request_duration_seconds"
    exposed |= {f"{histogram}_bucket", f"{histogram}_count", f"{histogram}_sum"}
    return (
        exposed
        | {rule["record"] for rule in recording_rules()}
        | set(external_metrics())
        | {"up", "ALERTS"}
    )


def _telemetry_doc() -> str:
    return (ROOT / "docs" / "telemetry.md").read_text()


# --- the SLOs are what docs/monitoring.md and docs/telemetry.md say -------------------------------


def test_latency_threshold_is_an_exact_bucket_boundary() -> None:
    text = "\n".join(path.read_text() for path in RULE_FILES)
    thresholds = set(re.findall(r'le="([^"]+)"', text))
    assert thresholds == {LATENCY_THRESHOLD}
    assert float(LATENCY_THRESHOLD) in SLO_THRESHOLDS_SECONDS
    assert float(LATENCY_THRESHOLD) in DURATION_BUCKETS


def test_burn_rate_alerts_follow_the_workbook_table() -> None:
    for slo, objective in SLO_OBJECTIVES.items():
        rules = [rule for rule in alert_rules() if rule["labels"].get("slo") == slo]
        windows = {
            (
                rule["labels"]["long_window"],
                rule["labels"]["short_window"],
                rule["labels"]["burn_rate_threshold"],
                rule["labels"]["severity"],
            )
            for rule in rules
        }
        assert windows == BURN_WINDOWS, slo
        for rule in rules:
            long, short, burn = (
                rule["labels"][key]
                for key in ("long_window", "short_window", "burn_rate_threshold")
            )
            expr = " ".join(rule["expr"].split())
            assert (
                f'namespace_slo:pleno_slo_burn_rate:ratio_rate{long}{{slo="{slo}"}} > {burn} and '
                f'namespace_slo:pleno_slo_burn_rate:ratio_rate{short}{{slo="{slo}"}} > {burn}'
            ) == expr, rule
        # The burn rate divides by this SLO's error budget.
        budget = f"{1 - objective:.3g}"
        burn_rules = [
            rule
            for rule in recording_rules()
            if rule["record"].startswith("namespace_slo:pleno_slo_burn_rate:")
            and rule["labels"]["slo"] == slo
        ]
        assert burn_rules
        assert all(rule["expr"].endswith(f"/ {budget}") for rule in burn_rules)


def test_slo_ratios_are_request_weighted() -> None:
    """Long windows divide sums of requests; no ratio is ever averaged over time."""
    for rule in recording_rules():
        if not rule["record"].startswith("namespace_slo:pleno_slo_errors:ratio_rate"):
            continue
        assert "avg_over_time" not in rule["expr"], rule["record"]
        window = rule["record"].removeprefix("namespace_slo:pleno_slo_errors:ratio_rate")
        if window == "30d":
            # Sums of the 5m numerator and denominator: a ratio of sums.
            assert rule["expr"].count("sum_over_time(") == 2
        elif window != "5m":
            assert f"[{window}]" in rule["expr"], rule["record"]


def test_slo_population_excludes_unmatched_routes() -> None:
    for rule in recording_rules():
        if rule["record"].startswith("namespace_slo:") and "pleno_http_" in rule["expr"]:
            for selector in re.findall(r"pleno_http_\w+\{([^}]*)\}", rule["expr"]):
                assert 'route!="<unmatched>"' in selector, rule["record"]


# --- configuration ------------------------------------------------------------------------------


def test_promtool_check_config_compose() -> None:
    done = run([promtool(), "check", "config", str(COMPOSE_CONFIG)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(RULE_FILES)} rule files found" in done.stdout


def test_promtool_check_config_kubernetes_with_static_discovery(tmp_path: Path) -> None:
    config = _config(K8S_CONFIG)
    replaced = 0
    for job in config["scrape_configs"]:
        if "kubernetes_sd_configs" in job:
            del job["kubernetes_sd_configs"]
            job["static_configs"] = [{"targets": ["10.0.0.1:8000"]}]
            replaced += 1
    assert replaced == 2  # kubernetes-pods and kube-state-metrics
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    # The same relative rule_files as in the pod (rules/ next to the config).
    (tmp_path / "rules").symlink_to(RULES_DIR)
    done = run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")])
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(RULE_FILES)} rule files found" in done.stdout


def test_both_configs_share_intervals_rules_and_alerting() -> None:
    kubernetes, compose = _config(K8S_CONFIG), _config(COMPOSE_CONFIG)
    assert kubernetes["global"] == compose["global"]
    assert kubernetes["rule_files"] == compose["rule_files"] == ["rules/*.yml"]
    for config in (kubernetes, compose):
        (manager,) = config["alerting"]["alertmanagers"]
        assert _targets(manager) == {"alertmanager:9093"}


def test_compose_targets_are_the_compose_services() -> None:
    config = _config(COMPOSE_CONFIG)
    targets = {job["job_name"]: _targets(job) for job in config["scrape_configs"]}
    assert targets == {
        "prometheus": {"prometheus:9090"},
        "pleno": {"backend:8000", "frontend:8000"},
        "otel-collector": {"otel-collector:8888"},
        "otel-collector-spanmetrics": {"otel-collector:8889"},
        "alertmanager": {"alertmanager:9093"},
    }
    # The labels Kubernetes discovery would set, so rules and dashboards work unchanged.
    for group in _job(config, "pleno")["static_configs"]:
        assert {"namespace": "pleno", "app": "pleno"}.items() <= group["labels"].items()


def test_kubernetes_jobs() -> None:
    config = _config(K8S_CONFIG)
    names = {job["job_name"] for job in config["scrape_configs"]}
    assert names == {
        "prometheus",
        "kubernetes-pods",
        "kube-state-metrics",
        "otel-collector",
        "otel-collector-spanmetrics",
        "alertmanager",
    }
    collector = "otel-collector.tracing.svc.cluster.local"
    assert _targets(_job(config, "otel-collector")) == {f"{collector}:8888"}
    assert _targets(_job(config, "otel-collector-spanmetrics")) == {f"{collector}:8889"}
    assert _job(config, "kube-state-metrics")["honor_labels"] is True


def test_pods_are_discovered_by_annotation_never_through_a_service() -> None:
    """Pod annotations OR the Service, never both: only the pod role is used, and the app puts
    the annotations on its pod template and none on its Service."""
    config = _config(K8S_CONFIG)
    roles = {
        sd["role"]
        for job in config["scrape_configs"]
        for sd in job.get("kubernetes_sd_configs", [])
    }
    assert roles == {"pod"}
    relabel = _job(config, "kubernetes-pods")["relabel_configs"]
    sources = [tuple(rule.get("source_labels", [])) for rule in relabel]
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    assert relabel[0] == {
        "source_labels": [f"{annotation}scrape"],
        "action": "keep",
        "regex": "true",
    }
    for suffix in ("scheme", "path"):
        assert (f"{annotation}{suffix}",) in sources
    drop = [rule for rule in relabel if rule.get("action") == "drop"]
    assert {"source_labels": ["__meta_kubernetes_pod_phase"], "action": "drop",
            "regex": "Succeeded|Failed"} in drop  # fmt: skip
    address = [rule for rule in relabel if rule.get("target_label") == "__address__"]
    assert {rule["replacement"] for rule in address} == {"$2:$1", "[$2]:$1"}  # IPv4, IPv6
    for rule in address:
        assert rule["source_labels"] == [f"{annotation}port", "__meta_kubernetes_pod_ip"]
    targets = {rule.get("target_label") for rule in relabel} | {
        rule.get("replacement") for rule in relabel if rule.get("action") == "labelmap"
    }
    assert {"namespace", "pod", "app"} <= targets

    app = render(BASE)
    template = one(app, "Deployment", "pleno")["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"
    (container,) = pod_spec(one(app, "Deployment", "pleno"))["containers"]
    ports = {port["containerPort"] for port in container["ports"]}
    assert int(annotations["prometheus.io/port"]) in ports
    service = one(app, "Service", "pleno")
    service_annotations = service["metadata"].get("annotations", {})
    assert not [key for key in service_annotations if key.startswith("prometheus.io/")]


# --- Kubernetes objects -------------------------------------------------------------------------


@functools.cache
def _stack() -> tuple[Manifest, ...]:
    return tuple(render(MONITORING_STACK))


def test_stack_objects_land_in_namespace_monitoring() -> None:
    for document in _stack():
        if document["kind"] == "Namespace":
            assert document["metadata"]["name"] == "monitoring"
            labels = document["metadata"]["labels"]
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        elif document["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert document["metadata"]["namespace"] == "monitoring", document["metadata"]


def test_prometheus_rbac_is_least_privilege() -> None:
    role = one(_stack(), "ClusterRole")
    granted = {
        (group, resource, tuple(sorted(rule["verbs"])))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    read = ("get", "list", "watch")
    assert granted == {
        ("", "pods", read),
        ("", "services", read),
        ("", "endpoints", read),
        ("", "nodes", read),
        ("discovery.k8s.io", "endpointslices", read),
    }
    binding = one(_stack(), "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}
    ]
    one(_stack(), "ServiceAccount", "prometheus")


@pytest.mark.parametrize("name", ["prometheus", "alertmanager", "grafana"])
def test_workloads_are_restricted(name: str) -> None:
    assert_restricted(one(_stack(), "Deployment", name))


SERVICE_PORTS = [("prometheus", 9090), ("alertmanager", 9093), ("grafana", 3000)]


@pytest.mark.parametrize(("name", "port"), SERVICE_PORTS)
def test_services_match_the_contract(name: str, port: int) -> None:
    service = one(_stack(), "Service", name)
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == port
    workload = one(_stack(), "Deployment", name)
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert labels["app.kubernetes.io/name"] == name
    (container,) = pod_spec(workload)["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container_ports[service_port["targetPort"]] == port


def test_prometheus_pod_mounts_the_repository_files() -> None:
    workload = one(_stack(), "Deployment", "prometheus")
    spec = pod_spec(workload)
    assert spec["serviceAccountName"] == "prometheus"
    assert spec["automountServiceAccountToken"] is True
    (container,) = spec["containers"]
    args = container["args"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in args
    assert "--enable-feature=exemplar-storage" in args
    (retention,) = [arg for arg in args if arg.startswith("--storage.tsdb.retention.time=")]
    assert int(retention.split("=")[1].removesuffix("d")) > 30, "the 30d SLO window needs 30 days"
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    config_volume = volumes[mounts["/etc/prometheus"]]["projected"]["sources"]
    config_map, rules_map = (source["configMap"] for source in config_volume)
    config = one(_stack(), "ConfigMap", config_map["name"])
    assert config["data"] == {"prometheus.yml": K8S_CONFIG.read_text()}
    rules = one(_stack(), "ConfigMap", rules_map["name"])
    assert rules["data"] == {path.name: path.read_text() for path in RULE_FILES}
    # Every rule file is projected under rules/, where `rule_files: [rules/*.yml]` looks.
    assert {item["key"]: item["path"] for item in rules_map["items"]} == {
        path.name: f"rules/{path.name}" for path in RULE_FILES
    }
    claim = volumes[mounts["/prometheus"]]["persistentVolumeClaim"]["claimName"]
    one(_stack(), "PersistentVolumeClaim", claim)
    assert workload["spec"]["strategy"]["type"] == "Recreate"  # one RWO volume, one writer
