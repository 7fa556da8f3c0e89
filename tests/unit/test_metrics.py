"""/metrics: the names, labels and buckets that dashboards and alerts rely on."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pleno.observability.metrics import DURATION_BUCKETS, SLO_THRESHOLDS_SECONDS, UNMATCHED_ROUTE
from tests.conftest import AppClient, make_settings, start_client
from tests.support.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.anyio


async def scrape(client: AppClient) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    matching = [v for found, v in samples.get(name, []) if labels.items() <= found.items()]
    assert matching, f"no sample {name}{labels}"
    return sum(matching)


async def test_red_metrics_use_route_templates(sqlite_client: AppClient) -> None:
    created = await sqlite_client.post("/api/v1/items", json={"name": "m"})
    await sqlite_client.get(created.headers["location"])
    await sqlite_client.get("/api/v1/items/424242")
    samples = await scrape(sqlite_client)
    route = "/api/v1/items/{item_id}"
    assert value(samples, "pleno_http_requests_total", method="GET", route=route, status="200") == 1
    assert value(samples, "pleno_http_requests_total", method="GET", route=route, status="404") == 1
    assert (
        value(
            samples, "pleno_http_requests_total", method="POST", route="/api/v1/items", status="201"
        )
        == 1
    )
    assert value(samples, "pleno_http_request_duration_seconds_count", route=route) == 2
    assert value(samples, "pleno_http_requests_in_flight") == 0
    assert not any("424242" in str(labels) for labels, _ in samples["pleno_http_requests_total"])


async def test_duration_buckets_include_every_slo_threshold(sqlite_client: AppClient) -> None:
    await sqlite_client.get("/version")
    samples = await scrape(sqlite_client)
    bounds = {
        float(labels["le"])
        for labels, _ in samples["pleno_http_request_duration_seconds_bucket"]
        if labels["le"] != "+Inf"
    }
    assert bounds == set(DURATION_BUCKETS)
    assert set(SLO_THRESHOLDS_SECONDS) <= bounds


async def test_random_paths_share_one_series(sqlite_client: AppClient) -> None:
    await sqlite_client.get("/warm-up-unmatched")
    before = await scrape(sqlite_client)
    for _ in range(1000):
        await sqlite_client.get(f"/{uuid.uuid4().hex}/{uuid.uuid4().hex}")
    after = await scrape(sqlite_client)
    added = {
        name: len(after[name]) - len(before.get(name, []))
        for name in after
        if name.startswith("pleno_http_")
    }
    assert sum(added.values()) <= 5, added
    assert value(after, "pleno_http_requests_total", route=UNMATCHED_ROUTE, status="404") == 1001


async def test_probes_and_scrapes_are_counted_apart(sqlite_client: AppClient) -> None:
    for path in ("/health", "/ready", "/metrics"):
        await sqlite_client.get(path)
    samples = await scrape(sqlite_client)
    api_routes = {labels["route"] for labels, _ in samples.get("pleno_http_requests_total", [])}
    assert not api_routes & {"/health", "/ready", "/metrics"}
    assert value(samples, "pleno_probe_requests_total", path="/health", status="200") == 1
    assert value(samples, "pleno_probe_requests_total", path="/ready", status="200") == 1
    assert value(samples, "pleno_probe_requests_total", path="/metrics", status="200") == 1


async def test_build_process_pool_and_readiness_metrics(sqlite_client: AppClient) -> None:
    await sqlite_client.get("/ready")
    samples = await scrape(sqlite_client)
    (build_labels, build_value), *_ = samples["pleno_build_info"]
    assert build_value == 1
    assert build_labels["commit"] == "unknown"
    assert build_labels["version"]
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "python_gc_objects_collected_total",
        "python_info",
    ):
        assert name in samples, name
    assert {labels["state"] for labels, _ in samples["pleno_db_pool_connections"]} == {
        "in_use",
        "idle",
    }
    assert "pleno_db_pool_overflow" in samples
    assert "pleno_db_pool_size" in samples
    assert value(samples, "pleno_ready") == 1
    await sqlite_client.post("/ready/disable")
    await sqlite_client.get("/ready")
    assert value(await scrape(sqlite_client), "pleno_ready") == 0


async def test_pool_metrics_follow_checkouts(sqlite_client: AppClient) -> None:
    engine = sqlite_client.app.state.engine
    async with engine.connect():
        during = await scrape(sqlite_client)
    assert value(during, "pleno_db_pool_connections", state="in_use") == 1


async def test_injected_faults_are_counted(chaotic_client: AppClient) -> None:
    statuses = [(await chaotic_client.get("/api/v1/items")).status_code for _ in range(10)]
    samples = await scrape(chaotic_client)
    counted = {
        labels["status"]: count
        for labels, count in samples.get("pleno_chaos_injected_errors_total", [])
    }
    # Every request got a fault (error rate 1.0), and this seed gives both kinds.
    assert counted == {"500": statuses.count(500), "503": statuses.count(503)}
    assert statuses.count(500) + statuses.count(503) == 10
    assert 0 < statuses.count(500) < 10
    assert value(samples, "pleno_chaos_injected_latency_seconds_total") > 0
    # The injected answers are measured like any other, so the SLO alerts see them.
    assert value(samples, "pleno_http_requests_total", route="/api/v1/items") == 10


async def test_openmetrics_on_request(sqlite_client: AppClient) -> None:
    response = await sqlite_client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


@pytest.fixture
async def no_metrics_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    settings = make_settings(f"sqlite:///{tmp_path}/db.sqlite", metrics_enabled=False)
    async for client in start_client(settings):
        yield client


async def test_metrics_can_be_disabled(no_metrics_client: AppClient) -> None:
    assert (await no_metrics_client.get("/metrics")).status_code == 404
    assert (await no_metrics_client.get("/api/v1/items")).status_code == 200


async def test_traced_requests_leave_exemplars(
    traced_client: AppClient, receiver: OtlpReceiver
) -> None:
    await traced_client.get("/version")
    traced_client.app.state.tracing.provider.force_flush()
    spans = receiver.wait_for(lambda spans: any(span.kind == "SERVER" for span in spans))
    (span,) = [span for span in spans if span.kind == "SERVER"]
    response = await traced_client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text"}
    )
    exemplar_lines = [
        line
        for line in response.text.splitlines()
        if line.startswith("pleno_http_request_duration_seconds_bucket") and " # {" in line
    ]
    assert exemplar_lines, "a traced request leaves an exemplar"
    assert all(f'trace_id="{span.trace_id}"' in line for line in exemplar_lines)
    # The classic text format has no exemplars; Prometheus asks for OpenMetrics to get them.
    assert " # {" not in (await traced_client.get("/metrics")).text
