import pytest

from tests.conftest import AppClient

pytestmark = pytest.mark.anyio


async def test_items_roundtrip(client: AppClient) -> None:
    created = await client.post("/api/v1/items", json={"name": "x"})
    assert created.status_code == 201, created.text
    got = await client.get(created.headers["location"])
    assert got.json()["name"] == "x"
