"""The service's exporter settings, as deployed, reach a real OTLP receiver.

The exporter env is not written here: it is taken from what would really run, the rendered
minikube overlay (Deployment + the ConfigMap it reads through envFrom/env) and the compose files
(backend and frontend, with the observability file on top). A real OTLP receiver, rotel (PyPI
`rotel`, a Rust OTLP agent), listens with the same protocol, the same path semantics (base URL +
`/v1/traces`) and, when it is free, the same port. `pleno serve` runs with exactly those OTEL_*
variables, gets one request with a sampled `traceparent`, and its SERVER span must come out of
rotel into the in-test sink.

Substituted, and why (everything else is the rendered value, byte for byte):
- the host: `otel-collector.tracing.svc.cluster.local` / `otel-collector` -> `127.0.0.1`, because
  cluster and compose DNS do not exist here;
- the port, only when the deployed port (4318) is already taken on this machine (other agents and
  tests share it): then a free port; the test output says which port was used.
The sampler is not overridden: the rendered one is parent-based, so the sampled `traceparent` of
the request decides, exactly as for a sampled request arriving through an ingress.

rotel exports what it receives over OTLP/HTTP to tests/support/otlp_receiver.py, which decodes it;
rotel's own gRPC receiver is put on another free port, so spans can only arrive over HTTP.
"""

from __future__ import annotations

import importlib.util
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import yaml

from tests.integration.conftest import ServerProcess, free_port
from tests.support.manifests import K8S, ROOT, Manifest, container_env, one, pod_spec, render
from tests.support.otlp_receiver import OtlpReceiver, Span
from tests.support.process import LoggedProcess

pytestmark = pytest.mark.integration

StartServer = Callable[..., ServerProcess]
OVERLAY = K8S / "overlays" / "minikube"
COMPOSE_FILES = (ROOT / "compose.yaml", ROOT / "compose.observability.yaml")
COLLECTOR_CONFIG = ROOT / "deploy" / "observability" / "otel-collector" / "config.yaml"
COLLECTOR_HOST_K8S = "otel-collector.tracing.svc.cluster.local"
COLLECTOR_HOST_COMPOSE = "otel-collector"
EXPORT_TIMEOUT = 20.0  # spans leave within 0.5 s (pleno.observability.tracing); rotel forwards


# --- where the deployed env comes from ---------------------------------------------------------


def kubernetes_otel_env() -> dict[str, str]:
    """OTEL_* as the pleno container in the minikube overlay sees them (envFrom, then env)."""
    docs = render(OVERLAY)
    container = _pleno_container(one(docs, "Deployment", "pleno"))
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        reference = source.get("configMapRef")
        if reference is not None:
            data = one(docs, "ConfigMap", reference["name"]).get("data", {})
            env.update({source.get("prefix", "") + key: value for key, value in data.items()})
    for name, value in container_env(container).items():
        if isinstance(value, str):
            env[name] = value
        elif isinstance(value, dict) and "configMapKeyRef" in value:
            ref = value["configMapKeyRef"]
            env[name] = one(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
    return {key: value for key, value in env.items() if key.startswith("OTEL_")}


def _pleno_container(deployment: Manifest) -> Manifest:
    containers: list[Manifest] = pod_spec(deployment)["containers"]
    named = [container for container in containers if container["name"] == "pleno"]
    return named[0] if named else containers[0]


def compose_environment(service: str) -> dict[str, str]:
    """A compose service's environment after merging the files as `docker compose -f ...` does.

    Both files write `environment` as a mapping, which compose merges key by key, later files
    winning; tests/deploy/test_compose.py checks that they keep using mappings.
    """
    merged: dict[str, str] = {}
    for path in COMPOSE_FILES:
        services = yaml.safe_load(path.read_text())["services"]
        environment = services.get(service, {}).get("environment", {})
        assert isinstance(environment, dict), f"{path.name}: {service}.environment is not a mapping"
        merged.update({key: str(value) for key, value in environment.items()})
    return merged


def compose_otel_env(service: str) -> dict[str, str]:
    return {k: v for k, v in compose_environment(service).items() if k.startswith("OTEL_")}


@dataclass(frozen=True)
class Deployed:
    source: str
    env: dict[str, str]
    host: str  # the hostname the deployed endpoint must name


def deployed(source: str) -> Deployed:
    if source == "kubernetes":
        return Deployed(source, kubernetes_otel_env(), COLLECTOR_HOST_K8S)
    service = source.removeprefix("compose-")
    return Deployed(source, compose_otel_env(service), COLLECTOR_HOST_COMPOSE)


# --- the collector side: the port the gateway really listens on --------------------------------


def collector_http_port() -> int:
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text())
    endpoint: str = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    return int(endpoint.rpartition(":")[2])


# --- rotel --------------------------------------------------------------------------------------


def rotel_binary() -> Path:
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        pytest.skip("rotel is not installed (PyPI `rotel`, in requirements-dev.lock)")
    binary = Path(spec.origin).parent / "rotel-agent"
    if not binary.exists():
        pytest.skip(f"the rotel package has no bundled agent binary at {binary}")
    return binary


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Rotel(LoggedProcess):
    """A foreground rotel agent: OTLP/HTTP in on `http_port`, OTLP/HTTP out to `sink`."""

    def __init__(self, binary: Path, http_port: int, sink: OtlpReceiver, workdir: Path) -> None:
        self.http_port = http_port
        super().__init__(
            [
                str(binary),
                "start",
                "--otlp-http-endpoint",
                f"127.0.0.1:{http_port}",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{free_port()}",
                "--exporter",
                "otlp",
                "--otlp-exporter-protocol",
                "http",
                "--otlp-exporter-endpoint",
                sink.endpoint,
                "--batch-timeout",
                "100ms",
                "--debug-log",
                "traces",
                "--pid-file",
                str(workdir / f"rotel-{http_port}.pid"),
                "--log-file",
                str(workdir / f"rotel-{http_port}.agent.log"),
            ],
            workdir / f"rotel-{http_port}.log",
        )

    def wait_listening(self, timeout: float = 10.0) -> bool:
        """True once rotel accepts on its HTTP port; False if it exited (e.g. port taken)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _accepts(self.http_port):
                # A connect can succeed against another listener that won a race for the port;
                # rotel exits when its bind fails, so give it a moment to do so.
                time.sleep(0.2)
                return self.process.poll() is None
            time.sleep(0.05)
        raise AssertionError(f"rotel not listening after {timeout}s:\n{self.log}")


@dataclass
class Receiver:
    rotel: Rotel
    sink: OtlpReceiver
    deployed_port: int

    @property
    def port(self) -> int:
        return self.rotel.http_port


@pytest.fixture(scope="module")
def rotel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    binary = rotel_binary()
    workdir = tmp_path_factory.mktemp("rotel")
    deployed_port = collector_http_port()
    with OtlpReceiver() as sink:
        candidates = [deployed_port] if _port_is_free(deployed_port) else []
        candidates += [free_port(), free_port()]
        for port in candidates:
            agent = Rotel(binary, port, sink, workdir)
            if agent.wait_listening():
                break
            agent.stop()  # lost the port to another process between the check and the bind
        else:
            raise AssertionError(f"rotel could not listen on any of {candidates}")
        try:
            yield Receiver(agent, sink, deployed_port)
        finally:
            agent.stop()


# --- the check ----------------------------------------------------------------------------------


def local_env(
    target: Deployed, port: int, deployed_port: int = 4318
) -> tuple[dict[str, str], list[str]]:
    """The deployed OTEL_* env with only the host (and, if it had to, the port) replaced.

    `port` is where rotel listens in place of `deployed_port`, the Collector's OTLP/HTTP port:
    an endpoint naming any other port is refused rather than silently redirected.
    """
    env = dict(target.env)
    substituted: list[str] = []
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        if name not in env:
            continue
        url = urlsplit(env[name])
        assert url.hostname == target.host, (
            f"{target.source}: {name}={env[name]} names another host"
        )
        assert url.port == deployed_port, (
            f"{target.source}: {name}={env[name]} is not the Collector's OTLP/HTTP port "
            f"{deployed_port}"
        )
        netloc = f"127.0.0.1:{port}"
        env[name] = urlunsplit(url._replace(netloc=netloc))
        substituted.append(f"{name}: {url.netloc} -> {netloc}")
    return env, substituted


def _server_spans(trace_id: str) -> Callable[[list[Span]], bool]:
    return lambda spans: any(s.trace_id == trace_id and s.kind == "SERVER" for s in spans)


SOURCES = ["kubernetes", "compose-backend", "compose-frontend"]


@pytest.mark.parametrize("source", SOURCES)
def test_deployed_exporter_settings_name_the_collectors_http_receiver(source: str) -> None:
    target = deployed(source)
    env = target.env
    assert env.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "http/protobuf", (
        f"{source}: the service exports only OTLP over HTTP/protobuf; got {env}"
    )
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    assert endpoint is not None, f"{source}: tracing is off, no OTLP endpoint in {env}"
    url = urlsplit(endpoint)
    assert url.scheme == "http"
    assert url.hostname == target.host
    # 4318 is the OTLP/HTTP receiver of the Collector config, not its gRPC one (4317).
    assert url.port == collector_http_port() == 4318
    if "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in env:
        assert url.path == "/v1/traces"
    else:
        assert url.path in ("", "/"), "a base endpoint gets /v1/traces appended by the SDK"


@pytest.mark.parametrize("source", SOURCES)
def test_spans_from_the_deployed_env_reach_a_real_otlp_receiver(
    source: str,
    rotel: Receiver,
    start_server: StartServer,
    record_property: Callable[[str, object], None],
) -> None:
    target = deployed(source)
    env, substituted = local_env(target, rotel.port, rotel.deployed_port)
    port_note = (
        "same port as deployed"
        if rotel.port == rotel.deployed_port
        else f"port {rotel.deployed_port} was taken here, so {rotel.port}"
    )
    substitution = f"{source}: substituted {substituted} ({port_note}); env {env}"
    record_property("substitution", substitution)  # in the JUnit report

    server = start_server(**env)
    server.wait_ready()
    trace_id = secrets.token_hex(16)
    parent_id = secrets.token_hex(8)
    response = httpx.get(
        server.url + "/api/v1/items",
        headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        timeout=5,
    )
    assert response.status_code == 200, response.text

    try:
        spans = rotel.sink.wait_for(_server_spans(trace_id), timeout=EXPORT_TIMEOUT)
    except AssertionError as error:
        raise AssertionError(
            f"{substitution}\n{error}\nrotel log:\n{rotel.rotel.log}\nserver log:\n{server.log}"
        ) from None
    server_span = next(s for s in spans if s.trace_id == trace_id and s.kind == "SERVER")
    assert server_span.parent_span_id == parent_id
    assert server_span.name == "GET /api/v1/items"
    assert server_span.attributes.get("http.route") == "/api/v1/items"
    assert server_span.service_name == "pleno"
    # The sink's port was given to rotel only, so the span crossed rotel's HTTP receiver; its
    # debug log says so too.
    assert "Received traces" in rotel.rotel.log


def test_substitution_changes_only_the_host_and_port() -> None:
    target = Deployed(
        "example",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{COLLECTOR_HOST_K8S}:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        },
        COLLECTOR_HOST_K8S,
    )
    env, substituted = local_env(target, 4318)
    assert env == {**target.env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    expected = f"OTEL_EXPORTER_OTLP_ENDPOINT: {COLLECTOR_HOST_K8S}:4318 -> 127.0.0.1:4318"
    assert substituted == [expected]
    with pytest.raises(AssertionError, match="names another host"):
        local_env(Deployed("wrong", target.env, "otel-collector"), 4318)
    grpc = {**target.env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{COLLECTOR_HOST_K8S}:4317"}
    with pytest.raises(AssertionError, match="not the Collector's OTLP/HTTP port"):
        local_env(Deployed("grpc port", grpc, COLLECTOR_HOST_K8S), 50000)
    assert local_env(target, 50000)[0]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:50000"
