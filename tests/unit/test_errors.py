"""One error shape everywhere, request ids, and the standard security headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from tests.conftest import AppClient, make_settings, start_client

pytestmark = pytest.mark.anyio

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def assert_problem(response: object, status: int) -> dict[str, object]:
    import httpx  # noqa: PLC0415

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_path_is_404_problem(sqlite_client: AppClient) -> None:
    assert_problem(await sqlite_client.get("/no/such/thing"), 404)


async def test_wrong_method_is_405_with_allow(sqlite_client: AppClient) -> None:
    response = await sqlite_client.put("/health")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


@pytest.fixture
async def small_body_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    settings = make_settings(f"sqlite:///{tmp_path}/db.sqlite", max_body_bytes=64)
    async for client in start_client(settings):
        yield client


async def test_declared_oversized_body_is_413(small_body_client: AppClient) -> None:
    response = await small_body_client.post(
        "/api/v1/items", json={"name": "x", "description": "d" * 100}
    )
    body = assert_problem(response, 413)
    assert "64 bytes" in str(body["detail"])


async def test_streamed_oversized_body_is_413(small_body_client: AppClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "x", "description": "'
        yield b"d" * 100
        yield b'"}'

    response = await small_body_client.post(
        "/api/v1/items", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_body_within_limit_passes(small_body_client: AppClient) -> None:
    response = await small_body_client.post("/api/v1/items", json={"name": "x"})
    assert response.status_code == 201


async def test_validation_problem_names_the_field(sqlite_client: AppClient) -> None:
    body = assert_problem(await sqlite_client.post("/api/v1/items", json={"name": 5}), 422)
    assert body["errors"] == [{"field": "body.name", "message": "Input should be a valid string"}]


async def test_unexpected_error_is_generic_500_without_traceback(
    sqlite_client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internal detail")

    sqlite_client.app.add_api_route("/explode", explode)
    response = await sqlite_client.get("/explode", headers={"X-Request-ID": "trace-me-42"})
    body = assert_problem(response, 500)
    assert body["request_id"] == "trace-me-42"
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    # The operator gets the traceback in the log, tied to the same request id.
    assert any(record.exc_info for record in caplog.records if "unhandled" in record.message)


async def test_request_id_is_accepted_or_generated(sqlite_client: AppClient) -> None:
    given = await sqlite_client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await sqlite_client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    other = await sqlite_client.get("/health")
    assert other.headers["x-request-id"] != generated.headers["x-request-id"]


@pytest.mark.parametrize("bad", ["", "x" * 129, "has space", "<script>", "a\tb"])
async def test_unsafe_request_ids_are_replaced(sqlite_client: AppClient, bad: str) -> None:
    response = await sqlite_client.get("/health", headers={"X-Request-ID": bad})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize("path", ["/health", "/", "/api/v1/items", "/missing", "/docs"])
async def test_every_response_has_nosniff(sqlite_client: AppClient, path: str) -> None:
    response = await sqlite_client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_no_endpoint_echoes_input_as_html(sqlite_client: AppClient) -> None:
    payload = "<script>alert(1)</script>"
    probes = [
        sqlite_client.get(f"/{payload}"),
        sqlite_client.get("/api/v1/items", params={"limit": payload}),
        sqlite_client.get(f"/api/v1/items/{payload}"),
        sqlite_client.get(f"/status/{payload}"),
        sqlite_client.get(f"/delay/{payload}"),
        sqlite_client.get("/api/v1/work", params={"cpu_ms": payload}),
        sqlite_client.post("/api/v1/items", json={"name": payload}),
        sqlite_client.post("/api/v1/items", content=payload.encode()),
    ]
    for pending in probes:
        response = await pending
        assert not response.headers["content-type"].startswith("text/html"), response.url
    # Every GET route, with the payload in each path parameter: only the docs pages (which
    # take no input) may answer HTML.
    for route in sqlite_client.app.routes:
        if not isinstance(route, APIRoute) or "GET" not in (route.methods or set()):
            continue
        path = re.sub(r"\{[^}]+\}", payload, route.path)
        if path.startswith("/delay/"):
            continue  # a numeric path: the payload already got 422 above, without the wait
        response = await sqlite_client.get(path, params={"q": payload})
        is_html = response.headers["content-type"].startswith("text/html")
        assert not is_html or route.path in {"/docs", "/redoc"}, route.path
