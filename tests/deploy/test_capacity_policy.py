"""The capacity model's HPA policy (loadtest/capacity.py POLICY) is what deploy/k8s/base declares.

make capacity predicts what the HPA will do from POLICY; the prediction is only worth something
if POLICY holds the rendered HPA's numbers and the pleno container's CPU request.
"""

from __future__ import annotations

import re

import pytest
from loadtest.capacity import POLICY

from tests.support.manifests import BASE, one, pod_spec, render

# The kube-controller-manager default (--horizontal-pod-autoscaler-tolerance).
DEFAULT_TOLERANCE = 0.1


def cpu_cores(quantity: str | int | float) -> float:
    """A Kubernetes CPU quantity ("100m", "0.5", 2) in cores."""
    text = str(quantity)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m?)", text)
    assert match, f"unsupported CPU quantity {text!r}"
    number, milli = match.groups()
    return float(number) / (1000 if milli else 1)


def test_cpu_cores() -> None:
    assert cpu_cores("100m") == pytest.approx(0.1)
    assert cpu_cores("1") == 1.0
    assert cpu_cores(2) == 2.0
    assert cpu_cores("0.25") == pytest.approx(0.25)


def test_policy_matches_the_rendered_base() -> None:
    docs = render(BASE)
    hpa = one(docs, "HorizontalPodAutoscaler", "pleno")
    spec = hpa["spec"]
    assert (POLICY.min_replicas, POLICY.max_replicas) == (spec["minReplicas"], spec["maxReplicas"])

    (metric,) = spec["metrics"]
    assert metric["type"] == "Resource"
    assert metric["resource"]["name"] == "cpu"
    target = metric["resource"]["target"]
    assert target["type"] == "Utilization"
    assert target["averageUtilization"] == pytest.approx(POLICY.target_utilization)

    deployment = one(docs, "Deployment", spec["scaleTargetRef"]["name"])
    container = next(c for c in pod_spec(deployment)["containers"] if c["name"] == "pleno")
    assert cpu_cores(container["resources"]["requests"]["cpu"]) == pytest.approx(POLICY.cpu_request)

    # The tolerance is the controller's unless the HPA sets its own (behavior.*.tolerance).
    behavior = spec.get("behavior", {})
    for direction in ("scaleUp", "scaleDown"):
        tolerance = behavior.get(direction, {}).get("tolerance", DEFAULT_TOLERANCE)
        assert float(tolerance) == pytest.approx(POLICY.tolerance), direction
