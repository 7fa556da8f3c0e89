"""Every kustomization in the repository renders, and every rendered object passes the real tools.

Discovery is automatic: each `kustomization.yaml` under deploy/ and loadtest/ becomes one test
case, named by its path, so a new overlay, stack or component is checked the day it lands.
- A `kind: Component` is rendered on top of deploy/k8s/base, through a throwaway kustomization
  that lists the base and the component (issue 5: "every component on top of the base").
- Anything else (base, overlays, stacks, per-tool dirs, deploy/argocd) is rendered on its own.

Then every rendered file goes through `kubernetes-validate --strict` for Kubernetes 1.30 and
through checkov's Kubernetes framework (one run over all files, offline), with zero failures.
CRDs have no schema offline; the ones allowed here are covered by tests/deploy/test_argocd.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import BASE, DEPLOY, ROOT, Manifest, render

KUBERNETES_VERSION = "1.30.0"
SEARCH_ROOTS = (DEPLOY, ROOT / "loadtest")
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# Kinds that have no schema in kubernetes-validate's offline bundle, and the test that checks them
# structurally instead. Any other "no schema" warning (say, a typo in apiVersion) fails.
KNOWN_CRDS = {
    ("argoproj.io/v1alpha1", "Application"): "tests/deploy/test_argocd.py",
    ("argoproj.io/v1alpha1", "AppProject"): "tests/deploy/test_argocd.py",
}
CHECKOV_VENV = ROOT / ".venv-checkov"
# The namespace the app's components land in (the shared contract), as the overlays set it.
COMPONENT_NAMESPACE = "pleno"
# Kustomizations that must exist: discovery finding fewer would silently check less.
REQUIRED_CASES = {
    "deploy/k8s/base",
    "deploy/k8s/overlays/minikube",
    "deploy/k8s/overlays/production",
    "deploy/k8s/components/postgres",
    "deploy/k8s/components/network-policies",
    "deploy/k8s/components/metrics-server",
    "deploy/k8s/components/migration",
    "deploy/k8s/components/loadtest",
    "deploy/k8s/stacks/monitoring",
    "deploy/k8s/stacks/logging",
    "deploy/k8s/stacks/tracing",
    "loadtest",
    "deploy/argocd",
    "deploy/argocd/apps",
}


@dataclass(frozen=True)
class Case:
    """One kustomization directory and how it is rendered."""

    directory: Path
    component: bool

    @property
    def id(self) -> str:
        return self.directory.relative_to(ROOT).as_posix()

    @property
    def file_name(self) -> str:
        """The rendered file's name in the shared output directory (flat, unique per case)."""
        return self.id.replace("/", "__") + ".yaml"


def _kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def discover() -> list[Case]:
    cases = []
    for root in SEARCH_ROOTS:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            # Hidden and cache directories are not deployable configuration.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            if not any(name in filenames for name in KUSTOMIZATION_NAMES):
                continue
            directory = Path(dirpath)
            path = _kustomization_file(directory)
            assert path is not None
            document = yaml.safe_load(path.read_text()) or {}
            cases.append(Case(directory, document.get("kind") == "Component"))
    return cases


CASES = discover()


def render_case(case: Case, scratch: Path) -> list[Manifest]:
    """Render a case; a component goes on top of the base, in a kustomization under `scratch`.

    kustomize rejects absolute paths in `resources` and `components`, but a relative path may
    leave the kustomization root when it names a directory (only files are load-restricted).
    """
    if not case.component:
        return render(case.directory)
    wrapper = scratch / "component-on-base" / case.file_name.removesuffix(".yaml")
    wrapper.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # As in the overlays: name references (generated ConfigMaps, Secrets) resolve per namespace.
        "namespace": COMPONENT_NAMESPACE,
        "resources": [os.path.relpath(BASE, wrapper)],
        "components": [os.path.relpath(case.directory, wrapper)],
    }
    (wrapper / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return render(wrapper)


@dataclass
class Rendered:
    directory: Path
    files: dict[str, Path]  # case id -> rendered file
    errors: dict[str, str]  # case id -> why it did not render
    documents: dict[str, list[Manifest]]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Every case rendered once, one file each, in one directory (the input of the tool runs)."""
    scratch = tmp_path_factory.mktemp("kustomize")
    output = scratch / "rendered"
    output.mkdir()
    result = Rendered(output, {}, {}, {})
    for case in CASES:
        try:
            documents = render_case(case, scratch)
        except AssertionError as error:
            result.errors[case.id] = str(error)
            continue
        target = output / case.file_name
        target.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        result.files[case.id] = target
        result.documents[case.id] = documents
    return result


def _case_ids() -> list[str]:
    return [case.id for case in CASES]


def test_discovery_finds_every_known_kustomization() -> None:
    found = set(_case_ids())
    assert found >= REQUIRED_CASES, f"not discovered: {sorted(REQUIRED_CASES - found)}"


def test_components_are_discovered_as_components() -> None:
    kinds = {case.id: case.component for case in CASES}
    for name in ("postgres", "network-policies", "metrics-server", "migration", "loadtest"):
        assert kinds[f"deploy/k8s/components/{name}"], name
    assert not kinds["deploy/k8s/base"]


@pytest.mark.parametrize("case_id", _case_ids())
def test_renders(rendered: Rendered, case_id: str) -> None:
    assert case_id not in rendered.errors, rendered.errors.get(case_id)
    documents = rendered.documents[case_id]
    assert documents, f"{case_id} rendered no objects"
    for document in documents:
        assert document.get("apiVersion"), document
        assert document.get("kind"), document
        assert document.get("metadata", {}).get("name"), document


# --- kubernetes-validate ------------------------------------------------------------------------


@dataclass
class ValidateLine:
    level: str
    message: str


@pytest.fixture(scope="session")
def validation(rendered: Rendered) -> dict[str, list[ValidateLine]]:
    """One `kubernetes-validate --strict` run over every rendered file; its lines per file."""
    binary = Path(sys.executable).with_name("kubernetes-validate")
    if not binary.exists():
        pytest.skip("kubernetes-validate is not installed in the venv (make venv)")
    files = sorted(rendered.files.values())
    done = subprocess.run(
        [str(binary), "--strict", "-k", KUBERNETES_VERSION, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    by_file: dict[str, list[ValidateLine]] = {str(path): [] for path in files}
    for line in (done.stdout + done.stderr).splitlines():
        level, _, rest = line.partition(" ")
        path, _, message = rest.partition(" ")
        if path in by_file:
            by_file[path].append(ValidateLine(level, message))
    ids = {str(path): case_id for case_id, path in rendered.files.items()}
    return {ids[path]: lines for path, lines in by_file.items()}


_NO_SCHEMA = re.compile(r"Couldn't find schema for kind (\S+) with api version (\S+)")


@pytest.mark.parametrize("case_id", _case_ids())
def test_kubernetes_validate_strict(
    rendered: Rendered, validation: dict[str, list[ValidateLine]], case_id: str
) -> None:
    assert case_id in validation, f"{case_id} did not render: {rendered.errors.get(case_id)}"
    lines = validation[case_id]
    errors = [line.message for line in lines if line.level == "ERROR"]
    assert not errors, "\n".join(errors)
    passed = sum(line.level == "INFO" and line.message.startswith("passed") for line in lines)
    unknown = []
    crds = 0
    for line in lines:
        match = _NO_SCHEMA.search(line.message)
        if match is None:
            continue
        kind, api_version = match.groups()
        if (api_version, kind) in KNOWN_CRDS:
            crds += 1
        else:
            unknown.append(f"{api_version} {kind}")
    assert not unknown, f"no schema for {unknown}: a typo, or a CRD without a structural test"
    # Every object was either validated against its schema or is a CRD with its own test.
    assert passed + crds == len(rendered.documents[case_id]), lines


# --- checkov -----------------------------------------------------------------------------------


def _checkov() -> Path:
    return CHECKOV_VENV / "bin" / "checkov"


def _includers() -> dict[str, list[Case]]:
    """Case id -> the cases whose `resources` list it (by relative directory path)."""
    by_directory = {case.directory.resolve(): case for case in CASES}
    included: dict[str, list[Case]] = {}
    for case in CASES:
        path = _kustomization_file(case.directory)
        assert path is not None
        document = yaml.safe_load(path.read_text()) or {}
        for entry in document.get("resources") or []:
            target = (case.directory / str(entry)).resolve()
            if target in by_directory:
                included.setdefault(by_directory[target].id, []).append(case)
    return included


INCLUDERS = _includers()
# Two checks are about where an object lands rather than what it is: "not in the default
# namespace" and "every pod has a NetworkPolicy" (a graph check over the namespace's policies).
# Only a deployable root decides those: the overlay or stack sets the namespace and picks the
# network-policies component. So they run in full on roots, and are left out for a directory that
# another kustomization includes and for a component rendered on the bare base. The namespace
# claim is asserted below; the policy claim is asserted on the overlays by test_k8s_app.py.
ROOT_ONLY_CHECKS = ("CKV_K8S_21", "CKV2_K8S_6")
CHECKOV_WORKERS = 2


def is_root(case: Case) -> bool:
    return case.id not in INCLUDERS and not case.component


def _run_checkov(path: Path, skip: tuple[str, ...]) -> list[dict[str, Any]]:
    """checkov on one rendered file: graph checks must not see other files' NetworkPolicies."""
    environment = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "LOG_LEVEL": "WARNING",
    }
    command = [str(_checkov()), "--framework", "kubernetes", "--file", str(path)]
    command += ["--skip-download", "--output", "json"]
    command += [f"--skip-check={check}" for check in skip]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=environment, check=False
    )
    # Exit 1 means "some check failed", which the per-case tests report; anything else is a crash.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    reports: list[dict[str, Any]] = report if isinstance(report, list) else [report]
    return [item.get("results", {}) for item in reports]


@pytest.fixture(scope="session")
def checkov_results(rendered: Rendered) -> dict[str, Any]:
    """Offline checkov (framework kubernetes), once per rendered file, two at a time."""
    if not _checkov().exists():
        pytest.skip(f"checkov not installed at {_checkov()} (make {_checkov().relative_to(ROOT)})")
    cases = {case.id: case for case in CASES}
    jobs = {
        path: () if is_root(cases[case_id]) else ROOT_ONLY_CHECKS
        for case_id, path in rendered.files.items()
    }
    with ThreadPoolExecutor(max_workers=CHECKOV_WORKERS) as pool:
        runs = list(pool.map(lambda job: _run_checkov(*job), jobs.items()))
    failed: dict[str, list[str]] = {}
    skipped: dict[str, list[str]] = {}
    passed: dict[str, int] = {}
    parse_errors: list[str] = []
    for run in runs:
        for results in run:
            for check in results.get("failed_checks", []):
                failed.setdefault(Path(check["file_path"]).name, []).append(
                    f"{check['check_id']} {check['resource']}: {check['check_name']}"
                )
            for check in results.get("skipped_checks", []):
                skipped.setdefault(Path(check["file_path"]).name, []).append(check["check_id"])
            for check in results.get("passed_checks", []):
                name = Path(check["file_path"]).name
                passed[name] = passed.get(name, 0) + 1
            parse_errors += results.get("parsing_errors", [])
    return {"failed": failed, "skipped": skipped, "passed": passed, "parse_errors": parse_errors}


NAMESPACED_EXCEPTIONS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
}


@pytest.mark.parametrize("case_id", sorted(INCLUDERS))
def test_included_directories_get_a_namespace(rendered: Rendered, case_id: str) -> None:
    """What justifies the relaxed namespace check: every object ends up with a namespace."""
    assert case_id in rendered.documents, rendered.errors.get(case_id)
    if all(
        doc.get("metadata", {}).get("namespace")
        for doc in rendered.documents[case_id]
        if doc["kind"] not in NAMESPACED_EXCEPTIONS
    ):
        return
    for includer in INCLUDERS[case_id]:
        path = _kustomization_file(includer.directory)
        assert path is not None
        document = yaml.safe_load(path.read_text()) or {}
        assert document.get("namespace"), f"{includer.id} includes {case_id} but sets no namespace"


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


@pytest.mark.parametrize("case_id", _case_ids())
def test_checkov_has_no_failed_checks(
    rendered: Rendered, checkov_results: dict[str, Any], case_id: str
) -> None:
    assert case_id in rendered.files, f"{case_id} did not render: {rendered.errors.get(case_id)}"
    name = rendered.files[case_id].name
    assert not [e for e in checkov_results["parse_errors"] if Path(e).name == name]
    assert not checkov_results["failed"].get(name), "\n".join(checkov_results["failed"][name])
    if any(doc["kind"] in WORKLOAD_KINDS for doc in rendered.documents[case_id]):
        # Proof that checkov read this file's workloads, not just that it found nothing wrong.
        assert checkov_results["passed"].get(name, 0) > 0


_SKIP_ANNOTATION = re.compile(r"^checkov\.io/skip\d+$")
_SKIP_VALUE = re.compile(r"^(CKV2?_K8S_\d+)=(.+)$")


@pytest.mark.parametrize("case_id", _case_ids())
def test_checkov_skips_carry_a_written_reason(rendered: Rendered, case_id: str) -> None:
    assert case_id in rendered.documents, rendered.errors.get(case_id)
    for document in rendered.documents[case_id]:
        annotations = document.get("metadata", {}).get("annotations") or {}
        for key, value in annotations.items():
            if not _SKIP_ANNOTATION.match(key):
                continue
            match = _SKIP_VALUE.match(str(value))
            assert match, f"{document['kind']}/{document['metadata']['name']} {key}: {value!r}"
            # A reason is a sentence, not a token like "ok" or "todo".
            assert len(match.group(2).split()) >= 5, f"{key}: reason too short: {value!r}"


def test_checkov_honours_the_skips(rendered: Rendered, checkov_results: dict[str, Any]) -> None:
    """The inline skips are read by checkov (so a zero-failure run is not an accident of names)."""
    name = rendered.files["deploy/k8s/overlays/minikube"].name
    assert {"CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"} <= set(checkov_results["skipped"][name])


@pytest.mark.parametrize("case_id", _case_ids())
def test_network_policies_select_rendered_pods(rendered: Rendered, case_id: str) -> None:
    """A policy whose podSelector matches no pod of its own render protects nothing: usually a
    label typo, which Kubernetes accepts silently."""
    from tests.deploy.test_k8s_app import matches, pod_templates  # noqa: PLC0415

    assert case_id in rendered.documents, rendered.errors.get(case_id)
    documents = rendered.documents[case_id]
    pods = pod_templates(documents)
    for policy in documents:
        if policy["kind"] != "NetworkPolicy":
            continue
        namespace = policy["metadata"].get("namespace", "")
        selector = policy["spec"]["podSelector"]
        assert any(ns == namespace and matches(selector, labels) for _, labels, ns in pods), (
            f"NetworkPolicy {policy['metadata']['name']} selects no pod in {case_id}"
        )
