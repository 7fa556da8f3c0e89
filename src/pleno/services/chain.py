"""The downstream call chain used to demonstrate distributed tracing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

DEPTH_HEADER = "X-Pleno-Chain-Depth"


@dataclass(frozen=True, slots=True)
class DownstreamResult:
    url: str
    status: int | None
    latency_ms: int
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


async def call_downstreams(
    client: httpx.AsyncClient, urls: list[str], depth: int, request_id: str
) -> list[DownstreamResult]:
    """Call every URL concurrently; each result says what happened, none raises."""
    headers = {DEPTH_HEADER: str(depth + 1), "X-Request-ID": request_id}
    return list(await asyncio.gather(*(_call(client, url, headers) for url in urls)))


async def _call(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> DownstreamResult:
    started = time.perf_counter()
    try:
        response = await client.get(url, headers=headers)
    except httpx.HTTPError as error:
        return DownstreamResult(url, None, _elapsed_ms(started), error=_describe(error))
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:1000]
    failure = None if response.is_success else f"HTTP {response.status_code}"
    return DownstreamResult(url, response.status_code, _elapsed_ms(started), body, failure)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _describe(error: httpx.HTTPError) -> str:
    kind = "timeout" if isinstance(error, httpx.TimeoutException) else "connection error"
    return f"{kind}: {type(error).__name__}: {error}".rstrip(": ")
