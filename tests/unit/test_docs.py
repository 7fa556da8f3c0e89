"""Swagger UI and ReDoc work offline, and can be switched off."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import AppClient, make_settings, start_client

pytestmark = pytest.mark.anyio

EXTERNAL_URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.IGNORECASE)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_reference_only_local_assets(sqlite_client: AppClient, page: str) -> None:
    response = await sqlite_client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert EXTERNAL_URL.findall(html) == []
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets, "the page loads its scripts and styles"
    for asset in assets:
        assert asset.startswith("/"), asset
        served = await sqlite_client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 0
    assert (await sqlite_client.get("/openapi.json")).status_code == 200
    if page == "/docs":
        assert '"validatorUrl": null' in html, "no spec upload to the online validator"


@pytest.fixture
async def no_docs_client(tmp_path: Path) -> AsyncIterator[AppClient]:
    settings = make_settings(f"sqlite:///{tmp_path}/db.sqlite", docs_enabled=False)
    async for client in start_client(settings):
        yield client


@pytest.mark.parametrize(
    "path", ["/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui.css"]
)
async def test_docs_can_be_disabled(no_docs_client: AppClient, path: str) -> None:
    assert (await no_docs_client.get(path)).status_code == 404
