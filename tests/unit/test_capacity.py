"""The capacity model's arithmetic (loadtest/capacity.py), on hand-computed cases.

HPA: 100m CPU request, 70% target (0.07 CPU per pod), 10% tolerance, 2..5 replicas.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from loadtest import capacity
from loadtest.capacity import (
    POLICY,
    HpaPolicy,
    Measurement,
    cpu_seconds_per_request,
    first_rps_at_max,
    hpa_desired_replicas,
    rps_beyond_max,
    rps_per_pod,
    settled_replicas,
    utilization,
)


def test_policy_is_the_one_the_cases_below_assume() -> None:
    # The hand-computed cases use these numbers; tests/deploy/test_capacity_policy.py ties POLICY
    # to the rendered deploy/k8s/base (HPA and the Deployment's CPU request).
    assert POLICY.target_cpu == pytest.approx(0.07)
    assert (POLICY.min_replicas, POLICY.max_replicas) == (2, 5)
    assert POLICY.tolerance == 0.1


def test_cpu_seconds_per_request() -> None:
    # 3 CPU seconds over 1000 requests: 3 ms each.
    assert cpu_seconds_per_request(3.0, 1000) == pytest.approx(0.003)
    assert cpu_seconds_per_request(0.0, 5) == 0.0
    with pytest.raises(ValueError, match="no request"):
        cpu_seconds_per_request(1.0, 0)
    with pytest.raises(ValueError, match="negative"):
        cpu_seconds_per_request(-1.0, 10)


def test_rps_per_pod_at_the_target() -> None:
    # 0.07 CPU s/s per pod at target: 7 ms per request -> 10 req/s; 50 ms -> 1.4 req/s.
    assert rps_per_pod(0.007) == pytest.approx(10.0)
    assert rps_per_pod(0.05) == pytest.approx(1.4)
    assert rps_per_pod(0.0035) == pytest.approx(20.0)
    # Another policy: 200m at 50% is 0.1 CPU per pod -> 20 req/s at 5 ms.
    assert rps_per_pod(0.005, HpaPolicy(cpu_request=0.2, target_utilization=50)) == (
        pytest.approx(20.0)
    )
    with pytest.raises(ValueError, match="positive"):
        rps_per_pod(0.0)


def test_utilization() -> None:
    # 20 req/s * 7 ms = 0.14 CPU over 2 pods of 100m = 70%.
    assert utilization(20, 0.007, 2) == pytest.approx(70.0)
    # The same load over 5 pods: 0.14 / 0.5 = 28%.
    assert utilization(20, 0.007, 5) == pytest.approx(28.0)


@pytest.mark.parametrize(
    ("current", "percent", "expected", "why"),
    [
        (2, 140, 4, "ratio 2.0: ceil(2 * 2.0) = 4"),
        (2, 78, 3, "ratio 1.114 is outside 10%: ceil(2 * 1.114) = ceil(2.23) = 3"),
        (2, 76, 2, "ratio 1.086 is within the tolerance: no change"),
        (2, 64, 2, "ratio 0.914 is within the tolerance: no change"),
        (2, 77, 3, "77/70 - 1 is 0.10000000000000009 in float64 (as upstream): ceil(2.2) = 3"),
        (4, 30, 2, "ratio 0.429: ceil(4 * 0.429) = ceil(1.71) = 2"),
        (4, 10, 2, "ceil(4 * 0.143) = 1, clamped up to min 2"),
        (3, 300, 5, "ceil(3 * 4.29) = 13, clamped down to max 5"),
        (5, 66, 5, "ratio 0.943 is within the tolerance"),
        (5, 60, 5, "ratio 0.857 is outside, but ceil(5 * 0.857) = ceil(4.29) = 5"),
        (5, 50, 4, "ceil(5 * 0.714) = ceil(3.57) = 4"),
        (3, 70.9, 3, "the controller truncates to whole percent: 70 -> ratio 1.0"),
        (1, 70, 2, "a count below min is clamped even when nothing else changes"),
    ],
)
def test_hpa_desired_replicas(current: int, percent: float, expected: int, why: str) -> None:
    assert hpa_desired_replicas(current, percent) == expected, why


def test_hpa_desired_replicas_with_a_wider_range() -> None:
    # max 20: ceil(10 * 91/70) = ceil(13.0) = 13, not clamped.
    assert hpa_desired_replicas(10, 91, HpaPolicy(max_replicas=20)) == 13


@pytest.mark.parametrize(
    ("rps", "expected", "why"),
    [
        # At 7 ms per request one pod holds 10 req/s at target (2 pods: 0.2 CPU of request).
        (15, 2, "52.5% on 2 pods: ceil(2 * 0.743) = 2"),
        (21, 2, "73.5% on 2 pods: within the tolerance"),
        (25, 3, "87.5% -> 87: ceil(2 * 1.243) = 3; then 58% on 3: ceil(3 * 0.829) = 3"),
        (39, 4, "136.5% -> 136: ceil(2 * 1.943) = 4; then 68% on 4: within the tolerance"),
        (41, 5, "143.5% -> 143: ceil(2 * 2.043) = 5; then 57% on 5: ceil(5 * 0.814) = 5"),
        (100, 5, "350% on 2 -> 10, clamped to 5 (140% each)"),
        (0, 2, "no load: min replicas"),
    ],
)
def test_settled_replicas(rps: float, expected: int, why: str) -> None:
    assert settled_replicas(rps, 0.007) == expected, why


def test_settled_replicas_from_a_higher_start_scales_down() -> None:
    # 15 req/s at 7 ms on 5 pods: 21% -> ceil(5 * 0.3) = 2; on 2 pods 52%: ceil(1.49) = 2.
    assert settled_replicas(15, 0.007, start=5) == 2


def test_where_the_hpa_reaches_max() -> None:
    # 5 pods stay only if ceil(5 * u/70) = 5, i.e. u >= 57 whole percent on 5 pods:
    # 5 * 0.1 * 0.57 = 0.285 CPU = 40.71 req/s at 7 ms. (From 2 pods, 141% already asks for 5.)
    assert first_rps_at_max(0.007) == pytest.approx(0.285 / 0.007, rel=1e-6)
    # 40.3 req/s: 141% on 2 -> ceil(4.03) = 5; on 5, 56.4% -> 56: ceil(5 * 0.8) = 4; on 4, 70.5%
    # -> 70: stays. So 4 (after the scale-down stabilization window has passed).
    assert hpa_desired_replicas(2, utilization(40.3, 0.007, 2)) == 5
    assert hpa_desired_replicas(5, utilization(40.3, 0.007, 5)) == 4
    assert settled_replicas(40.3, 0.007) == 4
    assert settled_replicas(40.8, 0.007) == 5
    # Beyond 5 pods * 0.07 * 1.1 = 0.385 CPU = 55 req/s, max is not enough.
    assert rps_beyond_max(0.007) == pytest.approx(55.0)
    assert utilization(56, 0.007, 5) > 77


def test_rps_grid_is_round_and_goes_past_the_max() -> None:
    # 55 * 1.2 / 10 = 6.6 -> step 10.
    grid = capacity.rps_grid(0.007)
    assert grid == [10.0 * k for k in range(1, 11)]
    assert grid[-1] > rps_beyond_max(0.007)
    assert capacity.nice_step(0.3) == pytest.approx(0.5)
    assert capacity.nice_step(2) == 2
    assert capacity.nice_step(7) == 10


def test_read_cpu_seconds_follows_this_process() -> None:
    pid = os.getpid()
    before_proc, before_own = capacity.read_cpu_seconds(pid), time.process_time()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        math.sqrt(12345.678)
    used_proc = capacity.read_cpu_seconds(pid) - before_proc
    used_own = time.process_time() - before_own
    # /proc counts clock ticks (10 ms on Linux); allow a few of them.
    assert used_proc == pytest.approx(used_own, abs=0.05)


def _measurement(name: str, requests: int, cpu: float, routes: dict[str, int]) -> Measurement:
    return Measurement(name, "x=1", requests, 0, cpu, 10.0, routes)


def test_predicted_mix_cost_weights_by_what_the_mix_sent() -> None:
    singles = [
        _measurement("GET /api/v1/items", 1000, 2.0, {}),  # 2 ms
        _measurement("GET /api/v1/work", 100, 5.0, {}),  # 50 ms
    ]
    mixed = _measurement(
        "default mix", 100, 0.0, {"GET /api/v1/items": 90, "GET /api/v1/work": 10, "X y": 5}
    )
    # (90 * 2 + 10 * 50) / 100 = 6.8 ms; routes that were not measured alone are left out.
    assert capacity.predicted_mix_cost(singles, mixed) == pytest.approx(0.0068)


def test_locust_counts(tmp_path: Path) -> None:
    stats = [
        {"method": "POST", "name": "/api/v1/items", "num_requests": 4, "num_failures": 1},
        {"method": "GET", "name": "/api/v1/items", "num_requests": 100, "num_failures": 2},
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(stats))
    routes, failures = capacity.locust_counts(path)
    assert routes == {"POST /api/v1/items": 4, "GET /api/v1/items": 100}
    assert failures == 3


def test_describe_database_hides_credentials() -> None:
    text = capacity.describe_database("postgresql://pleno:s3cret@db.example:5432/pleno")
    assert text.startswith("postgresql at db.example:5432")
    assert "s3cret" not in text
    assert "SQLite" in capacity.describe_database("")


def test_default_mix_is_read_from_the_locustfile() -> None:
    mix = capacity.read_default_mix()
    assert set(mix) == {"list", "get", "create", "update", "work", "chain"}
    assert all(weight > 0 for weight in mix.values())
    scenarios = capacity.default_scenarios(mix)
    assert [s.mix for s in scenarios[:-1]] == [f"{name}=1" for name in mix]
    assert scenarios[-1].mix == ",".join(f"{n}={w}" for n, w in mix.items())


def test_report_and_chart_from_synthetic_measurements(tmp_path: Path) -> None:
    names = [
        "GET /api/v1/items",
        "GET /api/v1/items/{item_id}",
        "POST /api/v1/items",
        "PATCH /api/v1/items/{item_id}",
        "GET /api/v1/work",
        "GET /api/v1/chain",
    ]
    measurements = [_measurement(name, 1000, 3.0, {}) for name in names]
    measurements[4] = _measurement("GET /api/v1/work", 100, 5.0, {})
    # Synthetic mix at 7 ms per request: 10 req/s per pod, max reached above 40.3 req/s.
    measurements.append(
        _measurement("default mix", 1000, 7.0, {"GET /api/v1/items": 900, "GET /api/v1/work": 100})
    )
    info = {
        "date": "synthetic",
        "cores": "2",
        "cpu": "test CPU",
        "memory": "1 kB",
        "kernel": "k",
        "python": "3",
        "loadavg_before": "0, 0, 0",
        "loadavg_after": "0, 0, 0",
        "idle_rate": "0.001",
        "note": "",
        "database": "synthetic DB",
    }
    settings = {"users": "8", "duration": "20", "work_cpu_ms": "50"}
    text = capacity.render_markdown(measurements, info=info, settings=settings)
    assert "| default mix | 1000 | 0 | 7.00 | 7.00 | 100 | 10.0 |" in text
    assert "| GET /api/v1/work | 100 | 0 | 5.00 | 50.00 | 10 | 1.4 |" in text
    assert "**10.0 req/s**" in text
    assert "| 40 | 4 | 70 |" in text  # 40 req/s: 0.28 CPU on 4 pods = 70%
    assert "| 50 | 5 | 70 |" in text
    assert "| 60 | 5 | 84 (over target at max) |" in text
    assert "5 replicas above 40.7 req/s" in text
    assert "Above **55.0 req/s**" in text
    # (900 * 3 ms + 100 * 50 ms) / 1000 = 7.7 ms predicted.
    assert "predicts 7.70 ms per request" in text
    assert "one uvicorn worker, synthetic DB," in text

    chart = tmp_path / "capacity.png"
    capacity.render_chart(measurements, chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert chart.stat().st_size > 10_000
