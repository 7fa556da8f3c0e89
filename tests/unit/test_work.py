"""/api/v1/work burns real CPU, bounded by a setting."""

from __future__ import annotations

import pytest

from pleno.services.work import burn_cpu
from tests.conftest import AppClient

pytestmark = pytest.mark.anyio


async def test_work_burns_about_the_asked_cpu(sqlite_client: AppClient) -> None:
    response = await sqlite_client.get("/api/v1/work", params={"cpu_ms": 50})
    assert response.status_code == 200
    body = response.json()
    assert body["cpu_ms_requested"] == 50
    # Thread CPU time, so other load on the machine does not inflate it much.
    assert 50 <= body["cpu_ms_used"] < 80
    assert body["rounds"] > 1
    assert len(body["sha256"]) == 64


async def test_work_defaults_and_zero(sqlite_client: AppClient) -> None:
    zero = (await sqlite_client.get("/api/v1/work", params={"cpu_ms": 0})).json()
    assert zero["rounds"] == 1
    default = (await sqlite_client.get("/api/v1/work")).json()
    assert default["cpu_ms_requested"] == 100


@pytest.mark.parametrize("cpu_ms", ["1001", "-1", "lots"])
async def test_work_rejects_out_of_range(sqlite_client: AppClient, cpu_ms: str) -> None:
    response = await sqlite_client.get("/api/v1/work", params={"cpu_ms": cpu_ms})
    assert response.status_code == 422


def test_one_round_is_a_real_sha256() -> None:
    import hashlib  # noqa: PLC0415

    from pleno.services.work import _BLOCK  # noqa: PLC0415

    expected = hashlib.sha256(hashlib.sha256(b"pleno").digest() + _BLOCK).hexdigest()
    result = burn_cpu(0)
    assert result.rounds == 1
    assert result.digest == expected
