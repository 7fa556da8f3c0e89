"""The items API suite. Runs on SQLite and on a real PostgreSQL with identical assertions."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import AppClient

pytestmark = pytest.mark.anyio

ITEMS = "/api/v1/items"


async def create(client: AppClient, **fields: object) -> dict[str, object]:
    response = await client.post(ITEMS, json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_create_returns_201_location_and_the_item(client: AppClient) -> None:
    response = await client.post(
        ITEMS, json={"name": "widget", "description": "a thing", "quantity": 3}
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{ITEMS}/{body['id']}"
    assert body["name"] == "widget"
    assert body["description"] == "a thing"
    assert body["quantity"] == 3
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset() is not None, "timestamps are timezone-aware"
    assert body["created_at"] == body["updated_at"]
    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_defaults_for_optional_fields(client: AppClient) -> None:
    body = await create(client, name="bare")
    assert body["description"] == ""
    assert body["quantity"] == 0


async def test_duplicate_name_is_409(client: AppClient) -> None:
    await create(client, name="unique")
    response = await client.post(ITEMS, json={"name": "unique"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "unique" in response.json()["detail"]
    # The failed insert left the session usable.
    assert (await client.get(ITEMS)).json()["total"] == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": "x" * 201}, "body.name"),
        ({"name": "ok", "description": "d" * 2001}, "body.description"),
        ({"name": "ok", "quantity": -1}, "body.quantity"),
        ({"name": "ok", "quantity": 2**31}, "body.quantity"),
        ({"name": "ok", "quantity": "many"}, "body.quantity"),
        ({"name": "ok", "colour": "red"}, "body.colour"),
    ],
)
async def test_invalid_create_is_422_naming_the_field(
    client: AppClient, payload: dict[str, object], field: str
) -> None:
    response = await client.post(ITEMS, json=payload)
    assert response.status_code == 422
    problem = response.json()
    assert field in [error["field"] for error in problem["errors"]]
    assert field in problem["detail"]


async def test_boundaries_are_accepted(client: AppClient) -> None:
    body = await create(client, name="n" * 200, description="d" * 2000, quantity=2**31 - 1)
    assert len(str(body["name"])) == 200


async def test_list_paginates_with_total(client: AppClient) -> None:
    for index in range(25):
        await create(client, name=f"item-{index:02d}")
    first = (await client.get(ITEMS)).json()
    assert first["total"] == 25
    assert first["limit"] == 20
    assert first["offset"] == 0
    assert len(first["items"]) == 20
    rest = (await client.get(ITEMS, params={"limit": 10, "offset": 20})).json()
    assert [item["name"] for item in rest["items"]] == [f"item-{i}" for i in range(20, 25)]
    assert rest["total"] == 25


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}, {"offset": 2**40}]
)
async def test_list_rejects_bad_paging(client: AppClient, params: dict[str, int | str]) -> None:
    response = await client.get(ITEMS, params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].startswith("query.")


async def test_patch_updates_only_given_fields(client: AppClient) -> None:
    body = await create(client, name="before", description="keep", quantity=1)
    response = await client.patch(f"{ITEMS}/{body['id']}", json={"quantity": 7})
    assert response.status_code == 200
    updated = response.json()
    assert updated["quantity"] == 7
    assert updated["description"] == "keep"
    assert updated["name"] == "before"
    assert updated["updated_at"] > updated["created_at"]
    renamed = await client.patch(f"{ITEMS}/{body['id']}", json={"name": "after"})
    assert renamed.json()["name"] == "after"


async def test_patch_rejects_null_and_duplicates(client: AppClient) -> None:
    first = await create(client, name="first")
    await create(client, name="second")
    null = await client.patch(f"{ITEMS}/{first['id']}", json={"name": None})
    assert null.status_code == 422
    duplicate = await client.patch(f"{ITEMS}/{first['id']}", json={"name": "second"})
    assert duplicate.status_code == 409
    assert (await client.get(f"{ITEMS}/{first['id']}")).json()["name"] == "first"


async def test_empty_patch_changes_nothing(client: AppClient) -> None:
    body = await create(client, name="same")
    response = await client.patch(f"{ITEMS}/{body['id']}", json={})
    assert response.status_code == 200
    assert response.json() == body


async def test_delete_is_204_then_404(client: AppClient) -> None:
    body = await create(client, name="doomed")
    response = await client.delete(f"{ITEMS}/{body['id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert (await client.get(f"{ITEMS}/{body['id']}")).status_code == 404
    assert (await client.delete(f"{ITEMS}/{body['id']}")).status_code == 404


@pytest.mark.parametrize("item_id", ["999", "0", "abc", str(2**40)])
async def test_missing_or_malformed_ids_are_client_errors(client: AppClient, item_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, f"{ITEMS}/{item_id}")
        assert response.status_code in {404, 422}, (method, item_id, response.text)
    patch = await client.patch(f"{ITEMS}/{item_id}", json={"quantity": 1})
    assert patch.status_code in {404, 422}


async def test_non_json_body_is_415(client: AppClient) -> None:
    response = await client.post(
        ITEMS, content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    no_type = await client.post(ITEMS, content=b'{"name": "x"}')
    assert no_type.status_code == 415
    merge = await client.patch(f"{ITEMS}/1", content=b"{}", headers={"content-type": "text/plain"})
    assert merge.status_code == 415


async def test_json_suffix_media_type_is_accepted(client: AppClient) -> None:
    response = await client.post(
        ITEMS,
        content=b'{"name": "suffix"}',
        headers={"content-type": "application/merge-patch+json; charset=utf-8"},
    )
    assert response.status_code == 201


async def test_malformed_json_is_422(client: AppClient) -> None:
    response = await client.post(
        ITEMS, content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
