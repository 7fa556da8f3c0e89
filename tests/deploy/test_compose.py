"""compose.yaml (service + PostgreSQL) and compose.observability.yaml (the whole stack) agree with
the repository and with every config they mount.

- Both files validate against the compose-spec JSON schema (check-jsonschema's vendored copy);
  where a `docker compose` or `docker-compose` binary exists, `config -q` must accept the merge too.
- Every service has a healthcheck, resource limits, 127.0.0.1-only published ports, and waits on
  what it needs with the right `depends_on` condition. Exceptions are listed here with a reason.
- Every mounted repository path exists, is read-only, and is the same file Kubernetes embeds.
- Every hostname and port that one config uses to reach another (compose env, the Collector
  config, Jaeger, Prometheus' compose config, Grafana datasources, Logstash, Filebeat) names a
  compose service and a port that service listens on.
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support import logstash
from tests.support.manifests import DEPLOY, K8S, ROOT, Manifest, pod_spec, render

BASE_FILE = ROOT / "compose.yaml"
STACK_FILE = ROOT / "compose.observability.yaml"
OBSERVABILITY = DEPLOY / "observability"

APP_SERVICES = {"backend", "frontend", "postgres"}
# The shared contract's compose service names.
STACK_SERVICES = {
    "prometheus",
    "alertmanager",
    "grafana",
    "otel-collector",
    "jaeger",
    "elasticsearch",
    "logstash",
    "kibana",
    "filebeat",
}
# One-shot setup containers, the compose side of the Kubernetes Jobs of the same scripts.
ONE_SHOTS = {"elasticsearch-init", "kibana-init"}
# Services without an in-container healthcheck, and why.
NO_HEALTHCHECK = {
    "otel-collector": "the upstream image is FROM scratch: no shell, no HTTP client to probe with",
}
# Host paths outside the repository that a service must read (Filebeat's documented exception).
HOST_PATHS = {"/var/lib/docker/containers", "/var/run/docker.sock"}
# Config files that exist for compose only, by design (Kubernetes uses a sibling file).
COMPOSE_ONLY = {
    OBSERVABILITY / "prometheus" / "prometheus.compose.yml": "static targets vs Kubernetes SD",
    OBSERVABILITY / "filebeat" / "filebeat.compose.yml": "Docker log paths vs the kubelet's",
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _merge(base: Any, override: Any) -> Any:
    """Compose's merge for the keys used here: mappings merge key by key, the rest is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return override


@cache
def services() -> dict[str, dict[str, Any]]:
    """The services of `docker compose -f compose.yaml -f compose.observability.yaml`."""
    merged: dict[str, dict[str, Any]] = _merge(
        load(BASE_FILE)["services"], load(STACK_FILE)["services"]
    )
    return merged


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping (merges by key)"
    return {key: str(value) for key, value in env.items()}


def exposed(service: str) -> set[int]:
    """The ports a service listens on, as its `expose` list declares them."""
    return {int(port) for port in services()[service].get("expose", [])}


@dataclass(frozen=True)
class Mount:
    service: str
    source: str  # as written
    target: str
    read_only: bool

    @property
    def in_repo(self) -> bool:
        return self.source.startswith("./")

    @property
    def host_path(self) -> Path:
        return (ROOT / self.source).resolve() if self.in_repo else Path(self.source)


def mounts() -> Iterator[Mount]:
    for name, spec in services().items():
        for volume in spec.get("volumes", []):
            assert isinstance(volume, str), f"{name}: use the short volume syntax"
            source, target, *options = volume.split(":")
            if source.startswith(("./", "/")):
                yield Mount(name, source, target, "ro" in options)


def container_path_source(service: str, path: str) -> Path | None:
    """The repository file or directory that a path inside the container comes from."""
    for mount in mounts():
        if mount.service != service or not mount.in_repo:
            continue
        inside = PurePosixPath(path)
        target = PurePosixPath(mount.target)
        if inside == target:
            return mount.host_path
        if target in inside.parents:
            return mount.host_path / inside.relative_to(target)
    return None


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    origin: str  # which file and key said so, for the failure message


def assert_reaches_a_service(address: Address) -> None:
    assert address.host in services(), f"{address.origin}: no compose service {address.host!r}"
    assert address.port in exposed(address.host), (
        f"{address.origin}: {address.host} listens on {sorted(exposed(address.host))}, "
        f"not {address.port}"
    )


def url_address(url: str, origin: str) -> Address:
    parts = urlsplit(url)
    assert parts.hostname, f"{origin}: {url!r} has no host"
    default = {"http": 80, "https": 443, "postgresql": 5432}.get(parts.scheme, 0)
    return Address(parts.hostname, parts.port or default, origin)


def hostport_address(value: str, origin: str) -> Address:
    host, _, port = value.rpartition(":")
    return Address(host, int(port), origin)


# Logstash and Beats resolve ${VAR:default}; Grafana provisioning resolves $VAR and ${VAR}.
_LOGSTASH_VAR = re.compile(r"\$\{(\w+):([^}]*)\}")
_GRAFANA_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def resolve_logstash_style(value: str, env: dict[str, str]) -> str:
    return _LOGSTASH_VAR.sub(lambda m: env.get(m.group(1), m.group(2)), value)


def resolve_grafana_style(value: str, env: dict[str, str], origin: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in env, f"{origin}: ${name} is not set in grafana's compose environment"
        return env[name]

    return _GRAFANA_VAR.sub(substitute, value)


# --- the files themselves -----------------------------------------------------------------------


def _compose_cli() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


def test_both_files_validate_against_the_compose_spec() -> None:
    """The schema always; `config -q` too where a compose binary exists (it needs no engine).

    These machines have the docker CLI without its compose plugin, so there the schema is the
    check; a developer machine with compose also gets compose's own parser and merge.
    """
    binary = Path(sys.executable).with_name("check-jsonschema")
    if not binary.exists():
        pytest.skip(f"check-jsonschema not installed at {binary} (make venv)")
    done = subprocess.run(
        [str(binary), "--builtin-schema", "vendor.compose-spec", str(BASE_FILE), str(STACK_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cli = _compose_cli()
    if cli is None:
        return
    for files in (["-f", str(BASE_FILE)], ["-f", str(BASE_FILE), "-f", str(STACK_FILE)]):
        done = subprocess.run(
            [*cli, *files, "config", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr


def test_docker_compose_up_is_the_service_and_postgres_the_second_file_adds_the_stack() -> None:
    base = set(load(BASE_FILE)["services"])
    stack = set(load(STACK_FILE)["services"])
    assert base == APP_SERVICES
    assert stack - {"backend", "frontend"} == STACK_SERVICES | ONE_SHOTS
    # The second file only adds telemetry settings to the service: no image, no ports.
    for name in ("backend", "frontend"):
        assert set(load(STACK_FILE)["services"][name]) <= {"environment", "depends_on"}
    # Nothing in compose.yaml depends on the stack: `docker compose up` stands alone.
    for spec in load(BASE_FILE)["services"].values():
        assert set(spec.get("depends_on", {})) <= APP_SERVICES


def test_one_image_two_roles() -> None:
    backend, frontend = services()["backend"], services()["frontend"]
    assert backend["image"] == frontend["image"]
    assert backend["build"] == frontend["build"] == {"context": "."}
    # One service.name, as in Kubernetes (dashboards filter on it); the pod name tells the roles.
    assert environment("backend")["PLENO_SERVICE_NAME"] == "pleno"
    assert environment("frontend")["PLENO_SERVICE_NAME"] == "pleno"
    assert environment("backend")["PLENO_POD_NAME"] == "backend"
    assert environment("frontend")["PLENO_POD_NAME"] == "frontend"
    assert "PLENO_DOWNSTREAM_URLS" not in environment("backend")


# --- every service ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(APP_SERVICES | STACK_SERVICES | ONE_SHOTS))
def test_every_service_is_bounded_and_local(name: str) -> None:
    spec = services()[name]
    limits = spec["deploy"]["resources"]["limits"]
    assert {"cpus", "memory"} <= set(limits), f"{name}: needs cpus and memory limits"
    for port in spec.get("ports", []):
        assert isinstance(port, str), f"{name}: use the short port syntax"
        assert port.startswith("127.0.0.1:"), f"{name}: {port} is not bound to 127.0.0.1"
        assert int(port.rsplit(":", 1)[1]) in exposed(name), f"{name}: {port} not in expose"
    image = spec["image"]
    tag = image.rpartition(":")[2]
    assert ":" in image, f"{name}: pin the image tag"
    assert tag not in ("latest", ""), f"{name}: pin the image tag"


@pytest.mark.parametrize("name", sorted(APP_SERVICES | STACK_SERVICES))
def test_every_long_running_service_has_a_healthcheck(name: str) -> None:
    check = services()[name].get("healthcheck")
    if name in NO_HEALTHCHECK:
        assert check == {"disable": True}, f"{name}: {NO_HEALTHCHECK[name]}"
        return
    assert check, f"{name}: no healthcheck"
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert not check.get("disable")


@pytest.mark.parametrize("name", sorted(ONE_SHOTS))
def test_one_shots_run_once(name: str) -> None:
    spec = services()[name]
    assert spec["restart"] == "no"
    assert "ports" not in spec
    waiting = [
        other
        for other, other_spec in services().items()
        if other_spec.get("depends_on", {}).get(name, {}).get("condition")
        == "service_completed_successfully"
    ]
    # kibana-init has no dependents: nothing needs the saved objects to start.
    assert waiting or name == "kibana-init"


def test_depends_on_waits_for_health_where_there_is_one() -> None:
    for name, spec in services().items():
        depends = spec.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: write depends_on with conditions"
        for dependency, condition in depends.items():
            assert dependency in services(), f"{name} depends on unknown {dependency}"
            expected = (
                "service_completed_successfully"
                if dependency in ONE_SHOTS
                else "service_started"
                if dependency in NO_HEALTHCHECK
                else "service_healthy"
            )
            assert condition == {"condition": expected}, f"{name} -> {dependency}"


@pytest.mark.parametrize(
    ("service", "needs"),
    [
        ("backend", {"postgres"}),
        ("frontend", {"postgres", "backend"}),
        ("otel-collector", {"jaeger"}),
        ("prometheus", {"alertmanager"}),
        ("grafana", {"prometheus", "jaeger", "elasticsearch"}),
        ("logstash", {"elasticsearch-init"}),
        ("elasticsearch-init", {"elasticsearch"}),
        ("kibana", {"elasticsearch"}),
        ("kibana-init", {"kibana"}),
        ("filebeat", {"logstash"}),
    ],
)
def test_start_order_where_it_matters(service: str, needs: set[str]) -> None:
    assert needs <= set(services()[service].get("depends_on", {}))


# --- mounts: the one source of truth ------------------------------------------------------------


def test_every_mounted_path_exists_and_is_read_only() -> None:
    found = list(mounts())
    assert found
    for mount in found:
        assert mount.read_only, f"{mount.service}: mount {mount.source} read-only (:ro)"
        if mount.in_repo:
            assert mount.host_path.exists(), f"{mount.service}: {mount.source} is not in the repo"
            assert OBSERVABILITY in mount.host_path.parents, (
                f"{mount.service}: configs come from deploy/observability/, not {mount.source}"
            )
        else:
            assert mount.source in HOST_PATHS, f"{mount.service}: unexpected host path"
            assert mount.service == "filebeat"


def _generated_files() -> set[Path]:
    """Every file that some kustomization under deploy/observability embeds in a ConfigMap."""
    files: set[Path] = set()
    for kustomization in OBSERVABILITY.glob("*/kustomization.yaml"):
        for generator in load(kustomization).get("configMapGenerator", []):
            for entry in generator.get("files", []):
                files.add((kustomization.parent / entry.rpartition("=")[2]).resolve())
    return files


def test_mounted_configs_are_the_files_kubernetes_embeds() -> None:
    generated = _generated_files()
    for mount in mounts():
        if not mount.in_repo:
            continue
        path = mount.host_path
        if path in COMPOSE_ONLY:
            continue
        if path.is_file():
            assert path in generated, f"{mount.service}: {mount.source} is not in a ConfigMap"
        else:
            assert any(path in file.parents for file in generated), (
                f"{mount.service}: nothing under {mount.source} is embedded by Kubernetes"
            )


def _command(service: str) -> list[str]:
    command = services()[service].get("command", [])
    assert isinstance(command, list), f"{service}: write command as a list"
    return [str(part) for part in command]


def _flag(service: str, flag: str) -> str:
    args = _command(service)
    for index, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag:
            return args[index + 1]
    raise AssertionError(f"{service}: no {flag} in {args}")


@pytest.mark.parametrize(
    ("service", "flag", "expected"),
    [
        ("otel-collector", "--config", OBSERVABILITY / "otel-collector" / "config.yaml"),
        ("jaeger", "--config", OBSERVABILITY / "jaeger" / "config.yaml"),
        ("prometheus", "--config.file", OBSERVABILITY / "prometheus" / "prometheus.compose.yml"),
        ("alertmanager", "--config.file", OBSERVABILITY / "alertmanager" / "alertmanager.yml"),
        ("filebeat", "-c", OBSERVABILITY / "filebeat" / "filebeat.compose.yml"),
    ],
)
def test_each_program_reads_the_mounted_file(service: str, flag: str, expected: Path) -> None:
    assert container_path_source(service, _flag(service, flag)) == expected


def test_logstash_bypasses_the_image_entrypoint() -> None:
    # The image's entrypoint rewrites config/logstash.yml from the environment, which fails on a
    # read-only mount. In compose, `command` would only replace CMD: it must be `entrypoint`.
    assert services()["logstash"].get("entrypoint") == ["/usr/share/logstash/bin/logstash"]


def test_logstash_reads_the_mounted_settings_and_pipeline() -> None:
    config = "/usr/share/logstash/config"
    for name in ("logstash.yml", "pipelines.yml"):
        source = container_path_source("logstash", f"{config}/{name}")
        assert source == OBSERVABILITY / "logstash" / "config" / name
    pipelines: list[dict[str, Any]] = yaml.safe_load(
        (OBSERVABILITY / "logstash" / "config" / "pipelines.yml").read_text()
    )
    assert pipelines
    for pipeline in pipelines:
        source = container_path_source("logstash", pipeline["path.config"])
        assert source is not None, f"logstash: {pipeline['path.config']} is not mounted"
        assert glob.glob(str(source)), f"logstash: nothing matches {pipeline['path.config']}"


def test_prometheus_rule_files_are_mounted() -> None:
    config_path = PurePosixPath(_flag("prometheus", "--config.file"))
    config = load(OBSERVABILITY / "prometheus" / "prometheus.compose.yml")
    patterns = config.get("rule_files", [])
    assert patterns, "prometheus.compose.yml loads no rules"
    matched: set[Path] = set()
    for pattern in patterns:
        # Prometheus resolves relative rule_files against the config file's directory.
        inside = config_path.parent / pattern
        source = container_path_source("prometheus", str(inside))
        assert source is not None, f"prometheus: rule_files {pattern} ({inside}) is not mounted"
        files = {Path(path) for path in glob.glob(str(source))}
        assert files, f"prometheus: {pattern} matches no file"
        matched |= files
    rules_dir = OBSERVABILITY / "prometheus" / "rules"
    assert matched == set(rules_dir.glob("*.yml")), "the compose config loads every rule file"


def test_grafana_reads_the_mounted_provisioning_and_dashboards() -> None:
    provisioning = container_path_source("grafana", "/etc/grafana/provisioning")
    assert provisioning == OBSERVABILITY / "grafana" / "provisioning"
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in load(path).get("providers", [])
    ]
    assert providers, "no dashboard provider in grafana/provisioning/dashboards"
    for provider in providers:
        source = container_path_source("grafana", provider["options"]["path"])
        assert source is not None, f"grafana: {provider['options']['path']} is not mounted"
        assert list(source.rglob("*.json")), f"grafana: no dashboards under {source}"


# --- hostnames and ports, across every config ---------------------------------------------------


def collector_config() -> dict[str, Any]:
    return load(OBSERVABILITY / "otel-collector" / "config.yaml")


def jaeger_config() -> dict[str, Any]:
    return load(OBSERVABILITY / "jaeger" / "config.yaml")


def _port(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def test_the_collector_and_jaeger_listen_where_compose_says() -> None:
    collector, jaeger = collector_config(), jaeger_config()
    reader = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert exposed("otel-collector") == {
        _port(collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]),
        _port(collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]),
        int(reader["prometheus"]["port"]),
        _port(collector["exporters"]["prometheus"]["endpoint"]),
        _port(collector["extensions"]["health_check"]["endpoint"]),
    }
    assert {
        _port(jaeger["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]),
        _port(jaeger["receivers"]["otlp"]["protocols"]["http"]["endpoint"]),
        _port(jaeger["extensions"]["jaeger_query"]["http"]["endpoint"]),
        _port(jaeger["extensions"]["healthcheckv2"]["http"]["endpoint"]),
    } <= exposed("jaeger")
    health = jaeger["extensions"]["healthcheckv2"]["http"]
    probe = " ".join(services()["jaeger"]["healthcheck"]["test"])
    assert f":{_port(health['endpoint'])}{health['status']['path']}" in probe


def test_the_collector_exports_to_jaeger() -> None:
    endpoint = collector_config()["exporters"]["otlp/jaeger"]["endpoint"]
    assert_reaches_a_service(hostport_address(endpoint, "otel-collector config otlp/jaeger"))
    grpc = jaeger_config()["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert _port(endpoint) == _port(grpc)


def test_the_collector_override_names_a_defined_processor() -> None:
    overrides = [a for a in _command("otel-collector") if a.startswith("--config=yaml:")]
    assert overrides == ["--config=yaml:processors::k8sattributes::passthrough: true"]
    assert "k8sattributes" in collector_config()["processors"]


@pytest.mark.parametrize("service", ["backend", "frontend"])
def test_the_service_exports_to_the_collectors_http_receiver(service: str) -> None:
    env = environment(service)
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    address = url_address(env["OTEL_EXPORTER_OTLP_ENDPOINT"], f"{service} OTEL endpoint")
    assert_reaches_a_service(address)
    assert address.host == "otel-collector"
    http = collector_config()["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert address.port == _port(http)


def test_the_service_reaches_postgres_and_the_frontend_reaches_the_backend() -> None:
    from pleno.api.chain import router  # noqa: PLC0415 - the real route table

    postgres = environment("postgres")
    for name in ("backend", "frontend"):
        url = environment(name)["PLENO_DATABASE_URL"]
        assert_reaches_a_service(url_address(url, f"{name} PLENO_DATABASE_URL"))
        parts = urlsplit(url)
        assert parts.username == postgres["POSTGRES_USER"]
        assert parts.password == postgres["POSTGRES_PASSWORD"]
        assert parts.path == "/" + postgres["POSTGRES_DB"]
    downstreams = environment("frontend")["PLENO_DOWNSTREAM_URLS"].split(",")
    routes = {getattr(route, "path", None) for route in router.routes}
    for url in downstreams:
        address = url_address(url, "frontend PLENO_DOWNSTREAM_URLS")
        assert_reaches_a_service(address)
        assert address.host == "backend"
        assert urlsplit(url).path in routes


def prometheus_targets() -> Iterator[Address]:
    config = load(OBSERVABILITY / "prometheus" / "prometheus.compose.yml")
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                yield hostport_address(target, f"prometheus.compose.yml job {job['job_name']}")
    for alerting in config.get("alerting", {}).get("alertmanagers", []):
        for static in alerting.get("static_configs", []):
            for target in static.get("targets", []):
                yield hostport_address(target, "prometheus.compose.yml alerting")


def test_prometheus_scrapes_and_alerts_real_services() -> None:
    targets = list(prometheus_targets())
    assert targets
    for address in targets:
        assert_reaches_a_service(address)
    scraped = {(address.host, address.port) for address in targets}
    collector = collector_config()
    reader = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    expected = {
        ("backend", 8000),
        ("frontend", 8000),
        ("otel-collector", int(reader["prometheus"]["port"])),  # the Collector's own metrics
        ("otel-collector", _port(collector["exporters"]["prometheus"]["endpoint"])),  # spanmetrics
        ("alertmanager", 9093),
    }
    assert expected <= scraped, f"missing: {expected - scraped}"


def grafana_datasources() -> list[dict[str, Any]]:
    directory = OBSERVABILITY / "grafana" / "provisioning" / "datasources"
    found = [
        source
        for path in sorted(directory.glob("*.y*ml"))
        for source in load(path).get("datasources", [])
    ]
    assert found, f"no datasources provisioned under {directory}"
    return found


def test_grafana_datasources_reach_compose_services() -> None:
    env = environment("grafana")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for source in grafana_datasources():
        by_type.setdefault(source["type"], []).append(source)
        if "url" not in source:
            continue
        origin = f"grafana datasource {source['name']}"
        url = resolve_grafana_style(str(source["url"]), env, origin)
        assert_reaches_a_service(url_address(url, origin))
    assert {"prometheus", "jaeger", "elasticsearch"} <= set(by_type)
    # The contract: cross-stack URLs come from these variables, which compose sets here.
    jaeger = url_address(env["JAEGER_URL"], "grafana JAEGER_URL")
    ui_port = _port(jaeger_config()["extensions"]["jaeger_query"]["http"]["endpoint"])
    assert (jaeger.host, jaeger.port) == ("jaeger", ui_port)
    elasticsearch = url_address(env["ELASTICSEARCH_URL"], "grafana ELASTICSEARCH_URL")
    assert (elasticsearch.host, elasticsearch.port) == ("elasticsearch", 9200)


def test_grafana_links_exemplars_to_traces_and_traces_to_logs() -> None:
    sources = grafana_datasources()
    uids: dict[str, set[str | None]] = {}
    for source in sources:
        uids.setdefault(source["type"], set()).add(source.get("uid"))
    exemplar_targets = {
        destination.get("datasourceUid")
        for source in sources
        if source["type"] == "prometheus"
        for destination in source.get("jsonData", {}).get("exemplarTraceIdDestinations", [])
    }
    assert exemplar_targets, "no Prometheus exemplar -> trace link"
    assert exemplar_targets <= uids["jaeger"], "exemplars must open traces in the Jaeger source"
    log_targets = set()
    for source in sources:
        if source["type"] != "jaeger":
            continue
        json_data = source.get("jsonData", {})
        for key in ("tracesToLogsV2", "tracesToLogs"):
            if key in json_data:
                log_targets.add(json_data[key].get("datasourceUid"))
                # The logs are found by the ECS field every traced log line carries.
                assert "trace.id" in json_data[key].get("query", ""), json_data[key]
    assert log_targets, "no Jaeger span -> logs link"
    assert log_targets <= uids["elasticsearch"], "spans must open logs in Elasticsearch"


def test_logs_flow_filebeat_to_logstash_to_elasticsearch() -> None:
    plugins = logstash.plugins()
    [beats] = [p for p in plugins if p.section == "input" and p.name == "beats"]
    assert int(beats.settings["port"]) in exposed("logstash")
    filebeat = load(OBSERVABILITY / "filebeat" / "filebeat.compose.yml")
    filebeat_env = environment("filebeat") if "environment" in services()["filebeat"] else {}
    for host in filebeat["output.logstash"]["hosts"]:
        address = hostport_address(resolve_logstash_style(host, filebeat_env), "filebeat output")
        assert address == Address("logstash", int(beats.settings["port"]), address.origin)
    outputs = [p for p in plugins if p.section == "output" and p.name == "elasticsearch"]
    assert outputs
    for output in outputs:
        for host in output.settings["hosts"]:
            url = resolve_logstash_style(host, environment("logstash"))
            assert_reaches_a_service(url_address(url, "logstash elasticsearch output"))
    settings = load(OBSERVABILITY / "logstash" / "config" / "logstash.yml")
    probe = " ".join(services()["logstash"]["healthcheck"]["test"])
    assert f":{settings['api.http.port']}/" in probe
    assert int(settings["api.http.port"]) in exposed("logstash")


def test_filebeat_ships_the_two_pleno_services() -> None:
    text = (OBSERVABILITY / "filebeat" / "filebeat.compose.yml").read_text()
    kept = set(re.findall(r"com_docker_compose_service: (\S+)", text))
    assert kept == {"backend", "frontend"}
    assert kept <= set(services())


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("kibana", "ELASTICSEARCH_HOSTS"),
        ("logstash", "ELASTICSEARCH_URL"),
        ("elasticsearch-init", "ELASTICSEARCH_URL"),
        ("kibana-init", "KIBANA_URL"),
        ("grafana", "ELASTICSEARCH_URL"),
        ("grafana", "JAEGER_URL"),
    ],
)
def test_url_settings_name_a_listening_service(service: str, variable: str) -> None:
    value = environment(service)[variable]
    urls = yaml.safe_load(value) if value.startswith("[") else [value]
    for url in urls:
        assert_reaches_a_service(url_address(url, f"{service} {variable}"))


@pytest.mark.parametrize("name", sorted(APP_SERVICES | STACK_SERVICES))
def test_healthchecks_probe_a_port_the_service_listens_on(name: str) -> None:
    check = services()[name].get("healthcheck", {})
    probe = " ".join(check.get("test", []))
    for port in re.findall(r"127\.0\.0\.1:(\d+)", probe):
        assert int(port) in exposed(name), f"{name}: healthcheck probes {port}"


def test_no_environment_interpolation_leaks_from_the_host() -> None:
    # The files must work from a clean shell: no ${VAR} that compose would take from the host.
    for path in (BASE_FILE, STACK_FILE):
        assert "${" not in path.read_text(), path.name


# compose service -> (kustomization to render, workload kind, workload name)
KUBERNETES_TWINS = {
    "postgres": (K8S / "overlays" / "minikube", "StatefulSet", "postgres"),
    "otel-collector": (OBSERVABILITY / "otel-collector", "Deployment", "otel-collector"),
    "jaeger": (OBSERVABILITY / "jaeger", "Deployment", "jaeger"),
    "prometheus": (OBSERVABILITY / "prometheus", "Deployment", "prometheus"),
    "alertmanager": (OBSERVABILITY / "alertmanager", "Deployment", "alertmanager"),
    "grafana": (OBSERVABILITY / "grafana", "Deployment", "grafana"),
    "elasticsearch": (OBSERVABILITY / "elasticsearch", "StatefulSet", "elasticsearch"),
    "logstash": (OBSERVABILITY / "logstash", "Deployment", "logstash"),
    "kibana": (OBSERVABILITY / "kibana", "Deployment", "kibana"),
    "filebeat": (OBSERVABILITY / "filebeat", "DaemonSet", "filebeat"),
}


def _workload(path: Path, kind: str, name: str) -> Manifest:
    found = [d for d in render(path) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{path.relative_to(ROOT)}: expected one {kind} {name}"
    return found[0]


@pytest.mark.parametrize("service", sorted(KUBERNETES_TWINS))
def test_compose_runs_the_image_kubernetes_runs(service: str) -> None:
    path, kind, name = KUBERNETES_TWINS[service]
    containers = pod_spec(_workload(path, kind, name))["containers"]
    images = {container["image"] for container in containers}
    assert services()[service]["image"] in images, f"{service}: compose and Kubernetes differ"
