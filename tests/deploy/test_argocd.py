"""ArgoCD's objects, checked structurally: their CRD schemas are not available offline, so
kubernetes-validate reports them as unknown kinds (tests/deploy/test_kustomize.py lets exactly
these through). What matters is checked here: every Application is allowed by the project, points
at a path of this repository that renders, and syncs the way docs/kubernetes.md says.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.manifests import DEPLOY, ROOT, Manifest, one, render, select

ARGOCD = DEPLOY / "argocd"
API_VERSION = "argoproj.io/v1alpha1"
EXPECTED_APPS = {
    "pleno": "deploy/k8s/overlays/minikube",
    "monitoring": "deploy/k8s/stacks/monitoring",
    "logging": "deploy/k8s/stacks/logging",
    "tracing": "deploy/k8s/stacks/tracing",
}
# Kinds without a namespace: the project must whitelist each one an Application deploys.
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "APIService",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}


def bootstrap() -> list[Manifest]:
    return render(ARGOCD)


def children() -> list[Manifest]:
    return render(ARGOCD / "apps")


def project() -> Manifest:
    return one(bootstrap(), "AppProject", "pleno")


def applications() -> list[Manifest]:
    return list(select(bootstrap(), "Application")) + list(select(children(), "Application"))


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def test_objects_have_the_argocd_shape() -> None:
    for doc in bootstrap() + children():
        assert doc["apiVersion"] == API_VERSION
        assert doc["kind"] in {"AppProject", "Application"}
        assert doc["metadata"]["namespace"] == "argocd"
        assert isinstance(doc["spec"], dict)
    for app in applications():
        spec = app["spec"]
        assert set(spec) <= {
            "project",
            "source",
            "destination",
            "syncPolicy",
            "ignoreDifferences",
            "info",
            "revisionHistoryLimit",
        }, set(spec)
        assert set(spec["source"]) == {"repoURL", "targetRevision", "path"}
        assert set(spec["destination"]) == {"server", "namespace"}


def test_root_is_an_app_of_apps() -> None:
    root = one(bootstrap(), "Application", "pleno-root")
    assert root["spec"]["source"]["path"] == "deploy/argocd/apps"
    assert (ROOT / root["spec"]["source"]["path"]).resolve() == (ARGOCD / "apps").resolve()
    names = {app["metadata"]["name"]: app for app in select(children(), "Application")}
    assert {name: app["spec"]["source"]["path"] for name, app in names.items()} == EXPECTED_APPS


def test_applications_are_allowed_by_the_project() -> None:
    spec = project()["spec"]
    destinations = {(d["server"], d["namespace"]) for d in spec["destinations"]}
    assert "*" not in {ns for _, ns in destinations}, "the project must name its namespaces"
    assert "*" not in spec["sourceRepos"]
    for app in applications():
        assert app["spec"]["project"] == project()["metadata"]["name"]
        assert app["spec"]["source"]["repoURL"] in spec["sourceRepos"]
        destination = app["spec"]["destination"]
        assert (destination["server"], destination["namespace"]) in destinations


@pytest.mark.parametrize("name", sorted(EXPECTED_APPS))
def test_application_path_renders_inside_the_project(name: str) -> None:
    """What ArgoCD would apply: the path's render, landing only where the project allows."""
    app = one(children(), "Application", name)
    path = ROOT / app["spec"]["source"]["path"]
    assert (path / "kustomization.yaml").is_file(), f"{path} has no kustomization.yaml"
    spec = project()["spec"]
    allowed_namespaces = {d["namespace"] for d in spec["destinations"]}
    cluster_kinds = {(k["group"], k["kind"]) for k in spec.get("clusterResourceWhitelist", [])}
    blacklist = {(k["group"], k["kind"]) for k in spec.get("namespaceResourceBlacklist", [])}
    for doc in render(path):
        key = (_group(doc["apiVersion"]), doc["kind"])
        if doc["kind"] in CLUSTER_SCOPED:
            assert key in cluster_kinds, f"{name}: {key} is not whitelisted for the project"
            continue
        namespace = doc["metadata"].get("namespace", app["spec"]["destination"]["namespace"])
        assert namespace in allowed_namespaces, f"{name}: {doc['kind']} in {namespace}"
        assert namespace == app["spec"]["destination"]["namespace"], doc["metadata"]["name"]
        assert key not in blacklist


@pytest.mark.parametrize("name", sorted(EXPECTED_APPS))
def test_sync_is_automated_and_creates_the_namespace(name: str) -> None:
    policy: dict[str, Any] = one(children(), "Application", name)["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert "CreateNamespace=true" in policy["syncOptions"]


@pytest.mark.parametrize("name", sorted(EXPECTED_APPS))
def test_deleting_the_application_keeps_the_namespace(name: str) -> None:
    """The Application's finalizer deletes what it deployed; a namespace going with it would take
    the external Secrets and the PersistentVolumeClaims (the data) that Git does not hold."""
    app = one(children(), "Application", name)
    assert "resources-finalizer.argocd.argoproj.io" in app["metadata"].get("finalizers", [])
    namespaces = list(select(render(ROOT / app["spec"]["source"]["path"]), "Namespace"))
    assert namespaces, f"{name}: its render brings no Namespace"
    for namespace in namespaces:
        options = (
            namespace["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-options", "")
        )
        assert "Delete=false" in options.split(","), namespace["metadata"]["name"]


def test_root_sync_is_automated() -> None:
    root = one(bootstrap(), "Application", "pleno-root")
    assert root["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


def test_pleno_ignores_hpa_managed_replicas() -> None:
    app = one(children(), "Application", "pleno")
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]
    ignored = app["spec"]["ignoreDifferences"]
    assert {
        "group": "apps",
        "kind": "Deployment",
        "name": "pleno",
        "jsonPointers": ["/spec/replicas"],
    } in ignored
    # The Deployment it names is the one the HPA scales.
    overlay = render(ROOT / app["spec"]["source"]["path"])
    hpa = one(overlay, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "pleno"
    assert one(overlay, "Deployment", "pleno")


def test_stacks_sync_before_the_app() -> None:
    waves = {
        app["metadata"]["name"]: int(
            app["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", 0)
        )
        for app in select(children(), "Application")
    }
    for stack in ("monitoring", "logging", "tracing"):
        assert waves[stack] < waves["pleno"]


def test_documented_bootstrap_matches_the_files() -> None:
    guide = (ROOT / "docs" / "kubernetes.md").read_text()
    assert "kubectl apply -k deploy/argocd" in guide
    assert project()["spec"]["sourceRepos"][0] in guide
