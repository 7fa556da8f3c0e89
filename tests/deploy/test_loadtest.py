"""The in-cluster load generator (loadtest/ and deploy/k8s/components/loadtest) on top of the base.

tests/deploy/test_kustomize.py renders and validates every kustomization (kubernetes-validate,
checkov); this file checks what is specific to the load test: the same locustfile, settings in one
place, a restricted pod, and a NetworkPolicy that really lets it reach Pleno and nothing else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from loadtest import run_time as run_time_module

from tests.support.manifests import BASE, K8S, ROOT, Manifest, one, pod_spec, render, select

COMPONENT = K8S / "components" / "loadtest"
LOADTEST = ROOT / "loadtest"


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """The base with the loadtest component, as an overlay would combine them."""
    wrapper = tmp_path_factory.mktemp("loadtest-on-base")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(BASE, wrapper)],
        "components": [os.path.relpath(COMPONENT, wrapper)],
    }
    (wrapper / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return render(wrapper)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def settings_configmap(docs: list[Manifest]) -> Manifest:
    found = [d for d in select(docs, "ConfigMap") if d["metadata"]["name"].startswith("loadtest-s")]
    assert len(found) == 1
    return found[0]


def test_component_is_a_component_with_a_readme() -> None:
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    assert (COMPONENT / "README.md").read_text().strip()


def test_everything_lands_in_the_pleno_namespace(docs: list[Manifest]) -> None:
    loadtest = [d for d in docs if d["metadata"]["name"].startswith("loadtest")]
    kinds = sorted(d["kind"] for d in loadtest)
    assert kinds == ["ConfigMap", "ConfigMap", "Job", "NetworkPolicy"]
    assert {d["metadata"]["namespace"] for d in loadtest} == {"pleno"}


def test_the_job_runs_the_same_locustfile(docs: list[Manifest]) -> None:
    job = one(docs, "Job", "loadtest")
    spec = pod_spec(job)
    (container,) = spec["containers"]
    volume = next(v for v in spec["volumes"] if v["name"] == "locustfile")
    configmap = one(docs, "ConfigMap", volume["configMap"]["name"])  # the hashed name resolves
    assert configmap["data"] == {"locustfile.py": (LOADTEST / "locustfile.py").read_text()}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "locustfile")
    assert f"--locustfile={mount['mountPath']}/locustfile.py" in container["args"]
    assert "--headless" in container["args"]


def test_users_and_spawn_rate_are_set_in_one_place(docs: list[Manifest]) -> None:
    job = one(docs, "Job", "loadtest")
    (container,) = pod_spec(job)["containers"]
    settings = settings_configmap(docs)
    assert [source["configMapRef"]["name"] for source in container["envFrom"]] == [
        settings["metadata"]["name"]
    ]
    data = settings["data"]
    assert int(data["LOCUST_USERS"]) > 0
    assert float(data["LOCUST_SPAWN_RATE"]) > 0
    assert re.fullmatch(r"\d+[smh]", data["LOCUST_RUN_TIME"])
    # Nowhere else: not in the container's env, not in its args.
    names = {item["name"] for item in container.get("env", [])}
    assert not names & {"LOCUST_USERS", "LOCUST_SPAWN_RATE", "LOCUST_HOST", "LOCUST_RUN_TIME"}
    assert not any(
        re.match(r"--(users|spawn-rate|host|run-time)|-[urt]$", a) for a in container["args"]
    )


def test_the_job_targets_the_pleno_service(docs: list[Manifest]) -> None:
    service = one(docs, "Service", "pleno")
    port = next(p for p in service["spec"]["ports"] if p["name"] == "http")["port"]
    assert settings_configmap(docs)["data"]["LOCUST_HOST"] == f"http://pleno:{port}"


def test_the_job_is_restricted_and_bounded(docs: list[Manifest]) -> None:
    job = one(docs, "Job", "loadtest")
    assert job["spec"]["backoffLimit"] == 0  # a retry would double the measured load
    assert job["spec"]["activeDeadlineSeconds"] > 0
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert isinstance(pod_security["runAsUser"], int)
    assert pod_security["runAsUser"] > 0
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}
    # A writable /tmp, since the root filesystem is read-only.
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")  # noqa: S108
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume


def test_the_image_is_the_locked_locust_version(docs: list[Manifest]) -> None:
    (container,) = pod_spec(one(docs, "Job", "loadtest"))["containers"]
    image, _, tag = container["image"].rpartition(":")
    assert image.endswith("locustio/locust")
    lock = (ROOT / "requirements-dev.lock").read_text()
    locked = re.search(r"^locust==(\S+)", lock, re.MULTILINE)
    assert locked, "locust is not pinned in requirements-dev.lock"
    assert tag == locked.group(1)


def _rule_allows(rule: dict[str, Any], labels: dict[str, str], port: int, proto: str) -> bool:
    peers = rule.get("to", [])
    ports = rule.get("ports", [])
    peer_ok = any(
        "namespaceSelector" not in peer and matches(peer["podSelector"]["matchLabels"], labels)
        for peer in peers
    )
    port_ok = any(p.get("port") == port and p.get("protocol", "TCP") == proto for p in ports)
    return peer_ok and port_ok


def test_network_policy_lets_loadtest_reach_pleno_and_dns_only(docs: list[Manifest]) -> None:
    policy = one(docs, "NetworkPolicy", "loadtest")
    job_labels = pod_spec_labels(one(docs, "Job", "loadtest"))
    assert matches(policy["spec"]["podSelector"]["matchLabels"], job_labels)
    assert job_labels["app.kubernetes.io/name"] == "loadtest"  # what pleno's ingress allows
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in policy["spec"]  # nothing may connect to the load generator

    deployment = one(docs, "Deployment", "pleno")
    pleno_labels = pod_spec_labels(deployment)
    app = next(
        c
        for c in pod_spec(deployment)["containers"]
        if any(p.get("name") == "http" for p in c.get("ports", []))
    )
    http_port = next(p for p in app["ports"] if p["name"] == "http")["containerPort"]
    egress = policy["spec"]["egress"]
    assert any(_rule_allows(rule, pleno_labels, http_port, "TCP") for rule in egress)

    dns = [rule for rule in egress if any("namespaceSelector" in peer for peer in rule["to"])]
    assert len(dns) == 1
    (peer,) = dns[0]["to"]
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert {(p["protocol"], p["port"]) for p in dns[0]["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert len(egress) == 2  # pleno and DNS, nothing else


def pod_spec_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def test_hpa_demo_applies_the_component_alone(tmp_path: Path) -> None:
    """scripts/hpa-demo.sh writes a kustomization with only the component: it must render."""
    script = (ROOT / "scripts" / "hpa-demo.sh").read_text()
    assert "deploy/k8s/components/loadtest" in script
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "pleno",
        "components": [os.path.relpath(COMPONENT, tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    kinds = sorted(d["kind"] for d in render(tmp_path))
    assert kinds == ["ConfigMap", "ConfigMap", "Job", "NetworkPolicy"]


def test_hpa_demo_load_phase_follows_the_configured_run_time(docs: list[Manifest]) -> None:
    """scripts/hpa-demo.sh takes its load phase from loadtest.run_time, which reads the same
    LOCUST_RUN_TIME the Job's rendered ConfigMap carries; no second copy of the number."""
    run_time = settings_configmap(docs)["data"]["LOCUST_RUN_TIME"]
    assert run_time_module.configured_run_time() == run_time
    expected = run_time_module.parse_run_time(run_time) + run_time_module.START_MARGIN_SECONDS
    assert run_time_module.load_seconds() == expected
    script = (ROOT / "scripts" / "hpa-demo.sh").read_text()
    assert '"$PYTHON" -m loadtest.run_time' in script
    assert not re.search(r"LOAD_SECONDS:-\d", script), "a hard-coded default is back"
    assert "realpath" not in script, "GNU-only realpath --relative-to"
    # The Job's deadline leaves room for the run.
    assert one(docs, "Job", "loadtest")["spec"]["activeDeadlineSeconds"] > expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300", 300), ("300s", 300), ("5m", 300), ("1h30m", 5400), ("1h2m3s", 3723)],
)
def test_parse_run_time(text: str, seconds: int) -> None:
    assert run_time_module.parse_run_time(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "1.5m"])
def test_parse_run_time_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a Locust run time"):
        run_time_module.parse_run_time(text)


def test_configured_run_time_reads_the_settings_generator(tmp_path: Path) -> None:
    kustomization = tmp_path / "kustomization.yaml"
    kustomization.write_text(
        yaml.safe_dump(
            {
                "configMapGenerator": [
                    {"name": "other", "literals": ["LOCUST_RUN_TIME=1s"]},
                    {"name": "loadtest-settings", "literals": ["LOCUST_RUN_TIME=2m"]},
                ]
            }
        )
    )
    assert run_time_module.load_seconds(kustomization) == 120 + 30
