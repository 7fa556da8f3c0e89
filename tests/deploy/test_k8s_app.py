"""The app's rendered Kubernetes objects agree with each other, with the image and with the code.

tests/deploy/test_kustomize.py proves every object is well formed (schemas, checkov); this file
proves the parts fit: the Service finds the pods, the ports and probe paths are the ones the
service really serves, the shutdown budget covers the service's own shutdown sequence, and the
NetworkPolicies allow exactly the flows of the shared contract (docs/kubernetes.md).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi.routing import APIRoute

from pleno.app import create_app
from pleno.settings import Settings, load_settings
from tests.support.manifests import BASE, K8S, ROOT, Manifest, one, pod_spec, render, select

MINIKUBE = K8S / "overlays" / "minikube"
PRODUCTION = K8S / "overlays" / "production"
APP_RENDERS = {"base": BASE, "minikube": MINIKUBE, "production": PRODUCTION}
OVERLAYS = {"minikube": MINIKUBE, "production": PRODUCTION}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
API_LABELS = {"app.kubernetes.io/name": "pleno", "app.kubernetes.io/component": "api"}
# Seconds the telemetry flush may take after the drain (BatchSpanProcessor export on shutdown).
FLUSH_MARGIN_SECONDS = 5
# How long endpoint removal takes to reach every kube-proxy and ingress controller: the
# EndpointSlice watch plus kube-proxy's sync period, a few seconds on a busy cluster.
ENDPOINT_PROPAGATION_SECONDS = 5
# Where Python and the HTTP stack spool; the only writable path of a read-only root.
TMP = "/tmp"  # noqa: S108 - a mount path in a manifest, not a file this test writes
SECRET_SETTINGS = {"PLENO_DATABASE_URL", "PLENO_ADMIN_TOKEN"}


def rendered(name: str) -> list[Manifest]:
    return render(APP_RENDERS[name])


def deployment(docs: list[Manifest]) -> Manifest:
    return one(docs, "Deployment", "pleno")


def app_container(docs: list[Manifest]) -> Manifest:
    containers = pod_spec(deployment(docs))["containers"]
    return next(c for c in containers if c["name"] == "pleno")


def config_env(docs: list[Manifest]) -> dict[str, str]:
    """The settings the pods get from the ConfigMap that the Deployment references."""
    names = [
        source["configMapRef"]["name"]
        for source in app_container(docs).get("envFrom", [])
        if "configMapRef" in source
    ]
    assert len(names) == 1, names
    return {str(k): str(v) for k, v in one(docs, "ConfigMap", names[0])["data"].items()}


def setting(docs: list[Manifest], name: str, field_name: str) -> float:
    """A numeric setting as the pods see it: the ConfigMap's value, else the code's default."""
    value = config_env(docs).get(name)
    if value is None:
        default = Settings.model_fields[field_name].default
        assert isinstance(default, int | float)
        return float(default)
    return float(value)


def named_port(container: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    matches = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert len(matches) == 1, f"port {port!r} not declared on container {container['name']}"
    return int(matches[0])


def _expression_holds(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    key, operator = expression["key"], expression["operator"]
    values = expression.get("values", [])
    outcomes = {
        "In": key in labels and labels[key] in values,
        "NotIn": not (key in labels and labels[key] in values),
        "Exists": key in labels,
        "DoesNotExist": key not in labels,
    }
    return outcomes[operator]


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_holds(e, labels) for e in selector.get("matchExpressions") or [])


def pod_templates(docs: list[Manifest]) -> list[tuple[Manifest, dict[str, str], str]]:
    """(workload, pod labels, namespace) of every pod template in the render."""
    result = []
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        spec = doc["spec"]
        template = (spec["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else spec)["template"]
        labels = template.get("metadata", {}).get("labels", {})
        result.append((doc, labels, doc["metadata"].get("namespace", "")))
    return result


# --- Deployment shape ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", APP_RENDERS)
def test_deployment_leaves_replicas_to_the_hpa(name: str) -> None:
    assert "replicas" not in deployment(rendered(name))["spec"]


@pytest.mark.parametrize("name", APP_RENDERS)
def test_recommended_labels_everywhere(name: str) -> None:
    for doc in rendered(name):
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "pleno", doc["metadata"]["name"]
    template_labels = deployment(rendered(name))["spec"]["template"]["metadata"]["labels"]
    assert template_labels["app.kubernetes.io/name"] == "pleno"
    assert template_labels["app.kubernetes.io/part-of"] == "pleno"
    assert template_labels["app.kubernetes.io/component"] == "api"


@pytest.mark.parametrize("name", APP_RENDERS)
def test_rollout_never_drops_below_the_current_count(name: str) -> None:
    spec = deployment(rendered(name))["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert spec["minReadySeconds"] > 0
    assert 0 < spec["revisionHistoryLimit"] <= 10


@pytest.mark.parametrize("name", APP_RENDERS)
def test_resources_match_the_finops_sizing(name: str) -> None:
    resources = app_container(rendered(name))["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert resources["limits"]["memory"] == "256Mi"
    assert "cpu" in resources["limits"]
    finops = (ROOT / "docs" / "finops.md").read_text()
    for value in ("100m", "128Mi", "256Mi"):
        assert value in finops, f"docs/finops.md does not justify {value}"


def _quantity(value: str) -> float:
    """A CPU (cores) or memory (GiB) quantity, for the units the manifests use."""
    units = {"m": 1e-3, "Mi": 1 / 1024, "Gi": 1.0}
    for suffix, scale in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * scale
    return float(value)


def test_finops_cost_table_follows_the_manifests() -> None:
    """Every cost row is recomputed from the rendered requests, HPA bounds and stated prices."""
    finops = (ROOT / "docs" / "finops.md").read_text()
    cpu_price = float(re.search(r"\$([\d.]+) per vCPU-hour", finops)[1])  # type: ignore[index]
    gib_price = float(re.search(r"\$([\d.]+) per GiB-hour", finops)[1])  # type: ignore[index]
    hours = float(re.search(r"A month is (\d+) hours", finops)[1])  # type: ignore[index]
    requests = app_container(rendered("base"))["resources"]["requests"]
    cpu, gib = _quantity(requests["cpu"]), _quantity(requests["memory"])
    base_hpa = one(rendered("base"), "HorizontalPodAutoscaler")["spec"]
    production_hpa = one(rendered("production"), "HorizontalPodAutoscaler")["spec"]
    rows = {
        "One Pleno pod": 1,
        "**2 replicas**": base_hpa["minReplicas"],
        "**5 replicas**": base_hpa["maxReplicas"],
        "8 replicas": production_hpa["maxReplicas"],
    }
    for label, replicas in rows.items():
        line = next(row for row in finops.splitlines() if row.startswith(f"| {label}"))
        cells = [cell.strip().strip("*") for cell in line.strip("|").split("|")]
        assert f"{replicas} replicas" in label or label == "One Pleno pod", (label, replicas)
        per_hour = replicas * (cpu * cpu_price + gib * gib_price)
        assert float(cells[1]) == pytest.approx(replicas * cpu), line
        assert float(cells[2]) == pytest.approx(replicas * gib), line
        assert float(cells[3]) == pytest.approx(per_hour, abs=1e-6), line
        assert float(cells[4]) == pytest.approx(per_hour * hours, abs=0.006), line


@pytest.mark.parametrize("name", APP_RENDERS)
def test_service_account_is_its_own_without_token(name: str) -> None:
    docs = rendered(name)
    spec = pod_spec(deployment(docs))
    account = one(docs, "ServiceAccount", spec["serviceAccountName"])
    assert account["metadata"]["name"] == "pleno"
    assert account["automountServiceAccountToken"] is False
    assert spec["automountServiceAccountToken"] is False


@pytest.mark.parametrize("name", APP_RENDERS)
def test_pods_spread_across_nodes(name: str) -> None:
    template = deployment(rendered(name))["spec"]["template"]
    keys = set()
    for constraint in template["spec"]["topologySpreadConstraints"]:
        assert matches(constraint["labelSelector"], template["metadata"]["labels"])
        keys.add(constraint["topologyKey"])
    assert "kubernetes.io/hostname" in keys


@pytest.mark.parametrize("name", APP_RENDERS)
def test_downward_api_identity(name: str) -> None:
    env = {item["name"]: item for item in app_container(rendered(name))["env"]}
    expected = {
        "PLENO_POD_NAME": "metadata.name",
        "PLENO_POD_NAMESPACE": "metadata.namespace",
        "PLENO_NODE_NAME": "spec.nodeName",
    }
    for variable, path in expected.items():
        assert env[variable]["valueFrom"]["fieldRef"]["fieldPath"] == path


@pytest.mark.parametrize("name", APP_RENDERS)
def test_settings_from_configmap_and_secrets_from_secret(name: str) -> None:
    docs = rendered(name)
    container = app_container(docs)
    env = {item["name"]: item for item in container["env"]}
    for variable in SECRET_SETTINGS:
        reference = env[variable]["valueFrom"]["secretKeyRef"]
        assert reference["key"] == variable
        assert reference["name"].startswith("pleno-secrets")
    config = config_env(docs)
    assert not SECRET_SETTINGS & set(config), "secrets must not sit in the ConfigMap"
    assert config["PLENO_LOG_FORMAT"] == "json"
    assert config["PLENO_HOST"] == "0.0.0.0"  # noqa: S104 - the pod's own interface
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == (
        "http://otel-collector.tracing.svc.cluster.local:4318"
    )
    assert config["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    # Migrations are the Job's; pods must not race each other doing them at start.
    assert config["PLENO_MIGRATE_ON_START"] == "false"


@pytest.mark.parametrize("name", APP_RENDERS)
def test_configmap_is_accepted_by_the_real_settings(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith(("PLENO_", "OTEL_")):
            monkeypatch.delenv(key)
    for key, value in config_env(rendered(name)).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PLENO_DATABASE_URL", "postgresql://u:p@postgres:5432/pleno")
    settings = load_settings()
    assert settings.migrate_on_start is False
    assert settings.otlp_traces_endpoint == (
        "http://otel-collector.tracing.svc.cluster.local:4318/v1/traces"
    )
    # /status and /delay burn the SLOs: drills on minikube, never open to clients in production.
    assert settings.chaos_endpoints_enabled is (name != "production")


@pytest.mark.parametrize("name", OVERLAYS)
def test_chain_demo_calls_the_pleno_service(name: str) -> None:
    docs = rendered(name)
    urls = config_env(docs)["PLENO_DOWNSTREAM_URLS"].split(",")
    service = one(docs, "Service", "pleno")
    for url in urls:
        parts = urlsplit(url)
        assert parts.hostname in {"pleno", f"pleno.{service['metadata']['namespace']}.svc"}
        assert parts.port in {port["port"] for port in service["spec"]["ports"]}
        # Not /api/v1/chain itself: that would recurse until PLENO_CHAIN_MAX_DEPTH answers 508.
        assert not parts.path.endswith("/chain")
        assert _route_exists(parts.path), parts.path


# --- Security -----------------------------------------------------------------------------------


def _dockerfile_user() -> tuple[int, int]:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert users, "the Dockerfile sets no USER"
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


@pytest.mark.parametrize("name", APP_RENDERS)
def test_pleno_pods_run_as_the_image_user(name: str) -> None:
    uid, gid = _dockerfile_user()
    docs = rendered(name)
    for workload, labels, _ in pod_templates(docs):
        if labels.get("app.kubernetes.io/name") != "pleno":
            continue
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsUser"] == uid
        assert spec["securityContext"]["runAsGroup"] == gid
        for container in spec["containers"]:
            assert container["securityContext"].get("runAsUser", uid) == uid


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_container_is_restricted_and_sized(name: str) -> None:
    """Pod Security "restricted", requests and limits, and probes on servers, for every workload."""
    for workload, _, _ in pod_templates(rendered(name)):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, where
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        assert not spec.get("hostNetwork"), where
        assert not spec.get("hostPID"), where
        for container in spec.get("initContainers", []) + spec["containers"]:
            at = f"{where} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, at
            assert security["readOnlyRootFilesystem"] is True, at
            assert security["capabilities"]["drop"] == ["ALL"], at
            assert not security["capabilities"].get("add"), at
            assert security.get("privileged", False) is False, at
            user = security.get("runAsUser", pod_security.get("runAsUser"))
            assert isinstance(user, int), f"{at}: numeric uid"
            assert user >= 10000, f"{at}: a uid no host account uses"
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), at
            assert {"cpu", "memory"} <= set(resources["limits"]), at
            if workload["kind"] in ("Deployment", "StatefulSet"):
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert probe in container, f"{at}: no {probe}"
        mounts = {m["mountPath"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        assert TMP in mounts, f"{where}: a read-only root needs an emptyDir at {TMP}"


# The uid the official postgres image's /etc/passwd names ("postgres"); any other uid has no
# passwd entry, and libpq then cannot find a default user name.
POSTGRES_IMAGE_UID = 999


def pg_isready_probes(container: Manifest) -> list[list[str]]:
    commands = []
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = container.get(probe, {}).get("exec", {}).get("command", [])
        if command and command[0].rsplit("/", 1)[-1] == "pg_isready":
            commands.append([str(part) for part in command])
    return commands


def test_pg_isready_probes_name_a_user() -> None:
    """pg_isready under a uid without a passwd entry answers "no attempt" (exit 3) unless PGUSER
    or -U names the user; exec probes get the container's env, so PGUSER there is enough."""
    docs = rendered("minikube")
    probed = 0
    for workload, _, _ in pod_templates(docs):
        spec = pod_spec(workload)
        for container in spec["containers"]:
            commands = pg_isready_probes(container)
            if not commands:
                continue
            user = container.get("securityContext", {}).get(
                "runAsUser", spec.get("securityContext", {}).get("runAsUser")
            )
            if user == POSTGRES_IMAGE_UID:
                continue
            env = {item["name"] for item in container.get("env", [])}
            for command in commands:
                probed += 1
                named = "PGUSER" in env or any(
                    part == "-U" or part.startswith(("--username", "-U")) for part in command
                )
                assert named, f"{workload['metadata']['name']}: {command} runs as uid {user}"
    assert probed == 3, "expected the postgres StatefulSet's three pg_isready probes"


@pytest.mark.parametrize("name", OVERLAYS)
def test_no_latest_or_untagged_images(name: str) -> None:
    for workload, _, _ in pod_templates(rendered(name)):
        spec = pod_spec(workload)
        for container in spec.get("initContainers", []) + spec["containers"]:
            image = container["image"]
            last = image.rsplit("/", 1)[-1]
            assert "@sha256:" in image or ":" in last, f"{image} has no tag"
            assert not last.endswith(":latest"), image


@pytest.mark.parametrize("name", APP_RENDERS)
def test_tmp_is_an_emptydir(name: str) -> None:
    spec = pod_spec(deployment(rendered(name)))
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = app_container(rendered(name))["volumeMounts"]
    mount = next(m for m in mounts if m["mountPath"] == TMP)
    assert "emptyDir" in volumes[mount["name"]]


# --- Service, probes, ports, scraping ------------------------------------------------------------


@pytest.mark.parametrize("name", APP_RENDERS)
def test_service_selects_the_api_pods_only(name: str) -> None:
    docs = rendered(name)
    service = one(docs, "Service", "pleno")
    assert service["spec"]["type"] == "ClusterIP"
    selected = [
        w
        for w, labels, _ in pod_templates(docs)
        if matches({"matchLabels": service["spec"]["selector"]}, labels)
    ]
    assert [w["kind"] for w in selected] == ["Deployment"], "the Job's pods must not get traffic"
    for port in service["spec"]["ports"]:
        assert port.get("name"), "Service ports are named"


@pytest.mark.parametrize("name", APP_RENDERS)
def test_ports_agree(name: str) -> None:
    """Service targetPort, probe ports, scrape annotation, container port and PLENO_PORT."""
    docs = rendered(name)
    container = app_container(docs)
    container_port = named_port(container, "http")
    service = one(docs, "Service", "pleno")
    target_ports = {named_port(container, p["targetPort"]) for p in service["spec"]["ports"]}
    assert target_ports == {container_port}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert named_port(container, container[probe]["httpGet"]["port"]) == container_port
    annotations = deployment(docs)["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == container_port
    assert int(config_env(docs).get("PLENO_PORT", Settings.model_fields["port"].default)) == (
        container_port
    )


@pytest.mark.parametrize("name", APP_RENDERS)
def test_scrape_annotations_only_on_the_pod_template(name: str) -> None:
    docs = rendered(name)
    template = deployment(docs)["spec"]["template"]["metadata"]["annotations"]
    assert template["prometheus.io/scrape"] == "true"
    assert _route_exists(template["prometheus.io/path"])
    for doc in docs:
        annotations = doc["metadata"].get("annotations") or {}
        assert not [k for k in annotations if k.startswith("prometheus.io/")], doc["kind"]


def _app_routes() -> dict[str, set[str]]:
    """Path -> methods of every route of the real app (docs on, so nothing is left out)."""
    app = create_app(Settings(database_url="sqlite:///unused.db", docs_enabled=True))
    routes: dict[str, set[str]] = {}
    for route in app.routes:
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None) or set()
        if path:
            routes.setdefault(path, set()).update(methods)
    openapi_paths = set(app.openapi()["paths"])
    # Every API route is documented; the probes are plain routes of the same app.
    assert {r.path for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema} <= (
        openapi_paths
    )
    return routes


_ROUTES = _app_routes()


def _route_exists(path: str, method: str = "GET") -> bool:
    return method in _ROUTES.get(path, set())


@pytest.mark.parametrize("name", APP_RENDERS)
def test_probe_paths_are_real_routes(name: str) -> None:
    container = app_container(rendered(name))
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert paths == {
        "startupProbe": "/health",
        "livenessProbe": "/health",
        "readinessProbe": "/ready",
    }
    for path in paths.values():
        assert _route_exists(path), f"{path} is not a GET route of pleno.app"


def test_route_check_rejects_unknown_paths() -> None:
    assert _route_exists("/ready")
    assert not _route_exists("/readyz")
    assert not _route_exists("/ready/disable")  # POST only


# --- Shutdown -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", APP_RENDERS)
def test_prestop_covers_endpoint_propagation(name: str) -> None:
    pre_stop = app_container(rendered(name))["lifecycle"]["preStop"]
    # The Kubernetes sleep action: no shell or binary needed in the image.
    assert pre_stop["sleep"]["seconds"] >= ENDPOINT_PROPAGATION_SECONDS


@pytest.mark.parametrize("name", APP_RENDERS)
def test_grace_period_exceeds_the_whole_shutdown(name: str) -> None:
    """preStop, then PLENO_SHUTDOWN_DELAY serving, then PLENO_DRAIN_TIMEOUT, then the flush: all
    inside terminationGracePeriodSeconds, which starts counting when preStop starts."""
    docs = rendered(name)
    pre_stop = app_container(docs)["lifecycle"]["preStop"]["sleep"]["seconds"]
    delay = setting(docs, "PLENO_SHUTDOWN_DELAY", "shutdown_delay")
    drain = setting(docs, "PLENO_DRAIN_TIMEOUT", "drain_timeout")
    grace = pod_spec(deployment(docs))["terminationGracePeriodSeconds"]
    assert grace > pre_stop + delay + drain + FLUSH_MARGIN_SECONDS


# --- HPA and PDB --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", APP_RENDERS)
def test_hpa_targets_the_deployment(name: str) -> None:
    docs = rendered(name)
    hpa = one(docs, "HorizontalPodAutoscaler", "pleno")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert target["name"] == deployment(docs)["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] == 2
    expected_max = 8 if name == "production" else 5
    assert hpa["spec"]["maxReplicas"] == expected_max
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    behavior = hpa["spec"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
    # Utilisation is relative to the request: without one the HPA shows <unknown>.
    assert "cpu" in app_container(docs)["resources"]["requests"]


def test_production_max_replicas_fits_the_database_connections() -> None:
    """docs/finops.md: max pods x (pool + overflow), plus one surge pod and the Job, < 97."""
    docs = rendered("production")
    max_pods = one(docs, "HorizontalPodAutoscaler", "pleno")["spec"]["maxReplicas"]
    pool = setting(docs, "PLENO_DB_POOL_SIZE", "db_pool_size")
    overflow = setting(docs, "PLENO_DB_MAX_OVERFLOW", "db_max_overflow")
    surge = deployment(docs)["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert (max_pods + surge) * (pool + overflow) + 1 < 100 - 3


@pytest.mark.parametrize("name", APP_RENDERS)
def test_pdb_selects_the_api_pods(name: str) -> None:
    docs = rendered(name)
    pdb = one(docs, "PodDisruptionBudget", "pleno")
    assert pdb["spec"]["minAvailable"] == 1
    labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert matches(pdb["spec"]["selector"], labels)
    assert pdb["spec"]["selector"] == deployment(docs)["spec"]["selector"]


# --- Overlays -----------------------------------------------------------------------------------


def test_minikube_overlay() -> None:
    docs = rendered("minikube")
    for workload in (deployment(docs), one(docs, "Job", "pleno-migrate")):
        container = pod_spec(workload)["containers"][0]
        assert container["image"] == "pleno:dev"
        assert container["imagePullPolicy"] == "IfNotPresent"
    assert one(docs, "Namespace")["metadata"]["name"] == "pleno"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "pleno", doc["metadata"]["name"]
    assert one(docs, "StatefulSet", "postgres")
    assert list(select(docs, "NetworkPolicy"))


def test_minikube_dev_secret_matches_the_database() -> None:
    docs = rendered("minikube")
    secrets = {s["metadata"]["name"].rsplit("-", 1)[0]: s for s in select(docs, "Secret")}
    assert set(secrets) == {"pleno-secrets", "postgres-credentials"}

    def value(secret: str, key: str) -> str:
        import base64  # noqa: PLC0415

        return base64.b64decode(secrets[secret]["data"][key]).decode()

    url = urlsplit(value("pleno-secrets", "PLENO_DATABASE_URL"))
    assert "dev-only" in value("pleno-secrets", "PLENO_ADMIN_TOKEN")
    assert url.username == value("postgres-credentials", "POSTGRES_USER")
    assert url.password == value("postgres-credentials", "POSTGRES_PASSWORD")
    assert url.password is not None
    assert "dev-only" in url.password
    assert url.path.lstrip("/") == value("postgres-credentials", "POSTGRES_DB")
    service = one(docs, "Service", "postgres")
    assert url.hostname == service["metadata"]["name"]
    assert url.port in {p["port"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("name", ["base", "production"])
def test_no_secret_outside_minikube(name: str) -> None:
    assert not list(select(rendered(name), "Secret"))


def test_production_overlay() -> None:
    docs = rendered("production")
    for workload in (deployment(docs), one(docs, "Job", "pleno-migrate")):
        container = pod_spec(workload)["containers"][0]
        image = container["image"]
        assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9/_-]+:\d+\.\d+\.\d+", image), image
        assert container["imagePullPolicy"] == "Always"
    env = {item["name"]: item for item in app_container(docs)["env"]}
    # The external Secret is referenced by its exact name: nothing generates (or hashes) it.
    assert env["PLENO_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "pleno-secrets"
    assert not list(select(docs, "StatefulSet"))
    keys = {c["topologyKey"] for c in pod_spec(deployment(docs))["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert config_env(docs)["PLENO_DOCS_ENABLED"] == "false"


@pytest.mark.parametrize("name", OVERLAYS)
def test_sync_waves_order_database_migration_app(name: str) -> None:
    docs = rendered(name)

    def wave(doc: Manifest) -> int:
        return int(doc["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", 0))

    job = one(docs, "Job", "pleno-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert pod_spec(job)["containers"][0]["args"] == ["migrate"]
    assert pod_spec(job)["containers"][0]["image"] == app_container(docs)["image"]
    for database in select(docs, "StatefulSet", "postgres"):
        assert wave(database) < wave(job)
    assert wave(job) < wave(deployment(docs))
    # ArgoCD waits for each wave to be healthy before the next: a workload whose ConfigMap or
    # Secret sits in a later wave never starts, and the sync deadlocks.
    generated = {
        (doc["kind"], doc["metadata"]["name"]): doc for doc in docs if doc["kind"] in CONFIG_KINDS
    }
    checked = 0
    for workload, _, _ in pod_templates(docs):
        for kind, ref in config_references(pod_spec(workload)):
            source = generated.get((kind, ref))
            if source is None:
                continue  # created outside the render (production's external pleno-secrets)
            checked += 1
            assert wave(source) <= wave(workload), (
                f"{kind} {ref} (wave {wave(source)}) syncs after "
                f"{workload['kind']} {workload['metadata']['name']} (wave {wave(workload)})"
            )
    assert checked >= 2, "no rendered ConfigMap or Secret referenced: the check saw nothing"


CONFIG_KINDS = ("ConfigMap", "Secret")


def config_references(spec: Manifest) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a pod spec reads: env valueFrom, envFrom,
    volumes (plain and projected)."""
    found: set[tuple[str, str]] = set()
    for container in spec.get("initContainers", []) + spec["containers"]:
        for item in container.get("env", []):
            source = item.get("valueFrom", {})
            if "configMapKeyRef" in source:
                found.add(("ConfigMap", source["configMapKeyRef"]["name"]))
            if "secretKeyRef" in source:
                found.add(("Secret", source["secretKeyRef"]["name"]))
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                found.add(("ConfigMap", source["configMapRef"]["name"]))
            if "secretRef" in source:
                found.add(("Secret", source["secretRef"]["name"]))
    for volume in spec.get("volumes", []):
        sources = [volume, *volume.get("projected", {}).get("sources", [])]
        for source in sources:
            if "configMap" in source:
                found.add(("ConfigMap", source["configMap"]["name"]))
            if "secret" in source:
                secret = source["secret"]
                found.add(("Secret", secret.get("secretName", secret.get("name"))))
    return found


def test_config_references_sees_every_kind_of_reference() -> None:
    spec: Manifest = {
        "initContainers": [{"envFrom": [{"secretRef": {"name": "s1"}}]}],
        "containers": [
            {
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c1", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}},
                    {"name": "C", "value": "plain"},
                ],
                "envFrom": [{"configMapRef": {"name": "c2"}}],
            }
        ],
        "volumes": [
            {"name": "v1", "configMap": {"name": "c3"}},
            {"name": "v2", "secret": {"secretName": "s3"}},
            {"name": "v3", "projected": {"sources": [{"configMap": {"name": "c4"}}]}},
            {"name": "v4", "emptyDir": {}},
        ],
    }
    assert config_references(spec) == {
        ("ConfigMap", "c1"),
        ("ConfigMap", "c2"),
        ("ConfigMap", "c3"),
        ("ConfigMap", "c4"),
        ("Secret", "s1"),
        ("Secret", "s2"),
        ("Secret", "s3"),
    }


# --- metrics-server component -------------------------------------------------------------------

UPSTREAM_ARGS = [
    "--cert-dir=/tmp",
    "--secure-port=10250",
    "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
    "--kubelet-use-node-status-port",
    "--metric-resolution=15s",
]


def test_metrics_server_component_patches_the_upstream_deployment(tmp_path: Path) -> None:
    """On a stand-in with the upstream Deployment's name and flags (the release manifest cannot be
    downloaded here), the component keeps every flag and adds the two test-cluster ones."""
    stand_in = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "metrics-server", "namespace": "kube-system"},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "metrics-server"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "metrics-server"}},
                "spec": {
                    "containers": [
                        {
                            "name": "metrics-server",
                            "image": "registry.k8s.io/metrics-server/metrics-server:v0.7.2",
                            "args": UPSTREAM_ARGS,
                        }
                    ]
                },
            },
        },
    }
    (tmp_path / "deployment.yaml").write_text(yaml.safe_dump(stand_in))
    component = os.path.relpath(K8S / "components" / "metrics-server", tmp_path)
    kustomization = {"resources": ["deployment.yaml"], "components": [component]}
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    args = one(render(tmp_path), "Deployment", "metrics-server")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert args[: len(UPSTREAM_ARGS)] == UPSTREAM_ARGS
    assert "--kubelet-insecure-tls" in args
    # pflag: the last occurrence wins, so InternalIP must lead in the last one.
    address_types = [a for a in args if a.startswith("--kubelet-preferred-address-types=")]
    assert address_types[-1].split("=", 1)[1].split(",")[0] == "InternalIP"


# --- NetworkPolicies ----------------------------------------------------------------------------

NETWORK_POLICY_RENDERS = {
    "minikube": MINIKUBE,
    "production": PRODUCTION,
}


def policies(docs: list[Manifest]) -> list[Manifest]:
    return list(select(docs, "NetworkPolicy"))


@pytest.mark.parametrize("name", NETWORK_POLICY_RENDERS)
def test_every_policy_selects_pods_that_exist(name: str) -> None:
    docs = render(NETWORK_POLICY_RENDERS[name])
    pods = pod_templates(docs)
    assert policies(docs)
    for policy in policies(docs):
        namespace = policy["metadata"]["namespace"]
        selected = [
            w
            for w, labels, ns in pods
            if ns == namespace and matches(policy["spec"]["podSelector"], labels)
        ]
        assert selected, f"NetworkPolicy {policy['metadata']['name']} selects no pod"


# Peers that the render cannot contain: the load generator ships in its own component.
OPTIONAL_PEERS = {"loadtest"}


@pytest.mark.parametrize("name", NETWORK_POLICY_RENDERS)
def test_same_namespace_peers_exist(name: str) -> None:
    docs = render(NETWORK_POLICY_RENDERS[name])
    pods = pod_templates(docs)
    for policy in policies(docs):
        rules = policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
        for rule in rules:
            for peer in rule.get("from", []) + rule.get("to", []):
                if "namespaceSelector" in peer or "ipBlock" in peer:
                    continue
                labels = peer["podSelector"].get("matchLabels", {})
                if labels.get("app.kubernetes.io/name") in OPTIONAL_PEERS:
                    continue
                assert any(matches(peer["podSelector"], pod) for _, pod, _ in pods), (
                    f"{policy['metadata']['name']}: peer {peer} matches no pod"
                )


@dataclass
class Endpoint:
    namespace: str = "pleno"
    labels: dict[str, str] = field(default_factory=dict)
    ip: str = "10.244.0.10"
    container_ports: dict[str, int] = field(default_factory=dict)


def _peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            address in ipaddress.ip_network(c) for c in block.get("except", [])
        )
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or matches(peer["podSelector"], other.labels)


def _port_matches(
    rule_ports: list[dict[str, Any]] | None, port: int, protocol: str, target: Endpoint
) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None or wanted == port or target.container_ports.get(str(wanted)) == port:
            return True
    return False


def allowed(
    docs: list[Manifest],
    source: Endpoint,
    target: Endpoint,
    port: int,
    protocol: str = "TCP",
    *,
    managed: frozenset[str] = frozenset({"pleno"}),
) -> bool:
    """NetworkPolicy semantics: a direction is open unless a policy selects the pod for it, and
    then only if some rule of some selecting policy admits the peer and port."""

    def direction_open(pod: Endpoint, kind: str, peer: Endpoint) -> bool:
        selecting = [
            p
            for p in policies(docs)
            if p["metadata"]["namespace"] == pod.namespace
            and kind in p["spec"].get("policyTypes", ["Ingress"])
            and matches(p["spec"]["podSelector"], pod.labels)
        ]
        if not selecting:
            return True
        key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
        for policy in selecting:
            for rule in policy["spec"].get(key, []):
                peers = rule.get(peers_key)
                peer_ok = not peers or any(
                    _peer_matches(p, policy["metadata"]["namespace"], peer) for p in peers
                )
                if peer_ok and _port_matches(rule.get("ports"), port, protocol, target):
                    return True
        return False

    # `managed`: the namespaces whose policies are all in `docs` (the app's renders hold only
    # pleno's); another namespace's side of a flow is taken as open.
    egress_ok = source.namespace not in managed or direction_open(source, "Egress", target)
    ingress_ok = target.namespace not in managed or direction_open(target, "Ingress", source)
    return egress_ok and ingress_ok


PLENO = Endpoint(
    labels={**API_LABELS, "app.kubernetes.io/part-of": "pleno"}, container_ports={"http": 8000}
)
MIGRATION = Endpoint(
    labels={"app.kubernetes.io/name": "pleno", "app.kubernetes.io/component": "migration"}
)
POSTGRES = Endpoint(
    labels={"app.kubernetes.io/name": "postgres", "app.kubernetes.io/component": "database"},
    container_ports={"postgres": 5432},
)
LOADTEST = Endpoint(labels={"app.kubernetes.io/name": "loadtest"})
PROMETHEUS = Endpoint("monitoring", {"app.kubernetes.io/name": "prometheus"})
GRAFANA = Endpoint("monitoring", {"app.kubernetes.io/name": "grafana"})
COLLECTOR = Endpoint("tracing", {"app.kubernetes.io/name": "otel-collector"})
JAEGER = Endpoint("tracing", {"app.kubernetes.io/name": "jaeger"})
KUBE_DNS = Endpoint("kube-system", {"k8s-app": "kube-dns"})
INTERNET = Endpoint("", {}, ip="203.0.113.7")
MANAGED_DB = Endpoint("", {}, ip="192.0.2.10")


def test_minikube_network_flows() -> None:
    docs = rendered("minikube")
    # The contract's flows.
    for source in (PLENO, MIGRATION, POSTGRES):
        assert allowed(docs, source, KUBE_DNS, 53, "UDP")
        assert allowed(docs, source, KUBE_DNS, 53, "TCP")
    assert allowed(docs, PROMETHEUS, PLENO, 8000)
    assert allowed(docs, PLENO, PLENO, 8000)  # /api/v1/chain
    assert allowed(docs, PLENO, POSTGRES, 5432)
    assert allowed(docs, MIGRATION, POSTGRES, 5432)
    assert allowed(docs, PLENO, COLLECTOR, 4317)
    assert allowed(docs, PLENO, COLLECTOR, 4318)
    # The load generator's own egress ships with it; here only pleno's side can be checked.
    pleno_ingress = [p for p in policies(docs) if p["metadata"]["name"] == "pleno-ingress"]
    assert pleno_ingress
    assert any(
        _peer_matches(peer, "pleno", LOADTEST)
        for rule in pleno_ingress[0]["spec"]["ingress"]
        for peer in rule["from"]
    )
    # And nothing else.
    assert not allowed(docs, GRAFANA, PLENO, 8000)
    assert not allowed(docs, PLENO, COLLECTOR, 8888)
    assert not allowed(docs, PLENO, JAEGER, 4318)
    assert not allowed(docs, PLENO, INTERNET, 443)
    assert not allowed(docs, POSTGRES, PLENO, 8000)
    assert not allowed(docs, POSTGRES, INTERNET, 443)
    assert not allowed(docs, LOADTEST, POSTGRES, 5432)
    assert not allowed(docs, PROMETHEUS, POSTGRES, 5432)
    assert not allowed(docs, MIGRATION, PLENO, 8000)
    assert not allowed(docs, PLENO, KUBE_DNS, 8053)


def test_production_network_flows() -> None:
    docs = rendered("production")
    assert allowed(docs, PLENO, MANAGED_DB, 5432)
    assert allowed(docs, MIGRATION, MANAGED_DB, 5432)
    assert allowed(docs, PROMETHEUS, PLENO, 8000)
    assert allowed(docs, PLENO, COLLECTOR, 4318)
    assert not allowed(docs, PLENO, MANAGED_DB, 22)
    assert not allowed(docs, PLENO, INTERNET, 5432)


STACKS = ("monitoring", "logging", "tracing")


def _workload_endpoints(docs: list[Manifest]) -> dict[str, Endpoint]:
    """An Endpoint per workload of the render, with its real pod labels and named ports."""
    endpoints = {}
    for workload, labels, namespace in pod_templates(docs):
        ports = {
            port["name"]: port["containerPort"]
            for container in pod_spec(workload)["containers"]
            for port in container.get("ports", [])
            if "name" in port
        }
        endpoints[workload["metadata"]["name"]] = Endpoint(namespace, labels, "10.244.1.9", ports)
    return endpoints


def test_whole_system_network_flows() -> None:
    """Both ends of every cross-component flow, with the app and all three stacks deployed."""
    docs = rendered("minikube") + [d for stack in STACKS for d in render(K8S / "stacks" / stack)]
    managed = frozenset({"pleno", *STACKS})
    pods = _workload_endpoints(docs)

    def flow(source: str, target: str, port: int) -> bool:
        return allowed(docs, pods[source], pods[target], port, managed=managed)

    required = [
        ("prometheus", "pleno", 8000),
        ("prometheus", "otel-collector", 8888),
        ("prometheus", "otel-collector", 8889),
        ("prometheus", "alertmanager", 9093),
        ("grafana", "prometheus", 9090),
        ("grafana", "jaeger", 16686),
        ("grafana", "elasticsearch", 9200),
        ("pleno", "otel-collector", 4318),
        ("otel-collector", "jaeger", 4317),
        ("filebeat", "logstash", 5044),
        ("logstash", "elasticsearch", 9200),
        ("kibana", "elasticsearch", 9200),
        ("elasticsearch-init", "elasticsearch", 9200),
        ("kibana-import", "kibana", 5601),
        ("pleno", "postgres", 5432),
    ]
    for source, target, port in required:
        assert flow(source, target, port), f"{source} -> {target}:{port} is blocked"
    for source in ("prometheus", "grafana", "otel-collector", "logstash", "kibana", "pleno"):
        assert allowed(docs, pods[source], KUBE_DNS, 53, "UDP", managed=managed), source
    forbidden = [
        ("grafana", "pleno", 8000),
        ("filebeat", "elasticsearch", 9200),
        ("pleno", "elasticsearch", 9200),
        ("pleno", "jaeger", 4317),
        ("kibana", "pleno", 8000),
        ("otel-collector", "postgres", 5432),
    ]
    for source, target, port in forbidden:
        assert not flow(source, target, port), f"{source} -> {target}:{port} should be closed"


def test_default_deny_covers_ingress_and_egress() -> None:
    for name in NETWORK_POLICY_RENDERS:
        docs = rendered(name)
        deny = [
            p
            for p in policies(docs)
            if p["spec"]["podSelector"] == {}
            and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert deny, f"{name}: no default-deny policy"


def test_policy_evaluator_sees_a_missing_allow(tmp_path: Path) -> None:
    """The flow checks can fail: drop the DNS policy and DNS is denied."""
    docs = [d for d in rendered("minikube") if d["metadata"]["name"] != "allow-dns-egress"]
    assert not allowed(docs, PLENO, KUBE_DNS, 53, "UDP")
