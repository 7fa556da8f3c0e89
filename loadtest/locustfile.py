"""Locust scenarios for Pleno: one weighted, realistic user against the real API.

One file serves every run: `make load` on a laptop, `make capacity` (one endpoint at a time, by
setting the mix), the Kubernetes Job (mounted from a ConfigMap generated from this very file) and
the integration test. See docs/loadtest.md.

Settings come from the environment:
- Locust's own: LOCUST_HOST, LOCUST_USERS, LOCUST_SPAWN_RATE, LOCUST_RUN_TIME (or the flags);
- ours, read once below in `LoadSettings.from_env`:
  LOAD_MIX            task weights, e.g. "list=4,get=8,create=1,update=2,work=3,chain=1";
                      a task left out (or set to 0) never runs
  LOAD_WORK_CPU_MS    the `cpu_ms` each /api/v1/work call asks for
  LOAD_THINK_MIN/MAX  seconds a user waits between two tasks (uniform)
  LOAD_MAX_ERROR_RATIO, LOAD_MAX_P95_MS
                      pass/fail thresholds checked when Locust stops; when either is set, it
                      alone decides the exit code (1 on a breach), instead of Locust's default
                      of failing on any single error
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from locust import FastHttpUser, between, events
from locust.env import Environment

log = logging.getLogger("pleno.loadtest")

# The default mix: mostly reads, some writes, a CPU-heavy share so the HPA has something to see.
DEFAULT_MIX: Mapping[str, int] = {
    "list": 4,
    "get": 8,
    "create": 1,
    "update": 2,
    "work": 3,
    "chain": 1,
}
# Each user remembers at most this many of the items it created; get/update pick among them.
KNOWN_ITEMS = 50


def parse_mix(text: str) -> dict[str, int]:
    """Parse "task=weight,..." into weights; unknown tasks and bad weights are errors."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_MIX:
            raise ValueError(
                f"LOAD_MIX: {part.strip()!r} is not task=weight with a task in "
                f"{', '.join(DEFAULT_MIX)}"
            )
        try:
            value = int(weight)
        except ValueError:
            raise ValueError(f"LOAD_MIX: weight of {name!r} is not an integer") from None
        if value < 0:
            raise ValueError(f"LOAD_MIX: weight of {name!r} is negative")
        mix[name] = value
    if not any(mix.values()):
        raise ValueError("LOAD_MIX: at least one task needs a positive weight")
    return mix


def _optional_float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    return float(raw) if raw else None


@dataclass(frozen=True)
class LoadSettings:
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    work_cpu_ms: int = 50
    think_min: float = 0.5
    think_max: float = 2.0
    max_error_ratio: float | None = None
    max_p95_ms: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoadSettings:
        mix_text = env.get("LOAD_MIX", "").strip()
        think_min = float(env.get("LOAD_THINK_MIN", "0.5"))
        think_max = float(env.get("LOAD_THINK_MAX", "2.0"))
        if not 0 <= think_min <= think_max:
            raise ValueError("LOAD_THINK_MIN/MAX: need 0 <= min <= max")
        return cls(
            mix=parse_mix(mix_text) if mix_text else dict(DEFAULT_MIX),
            work_cpu_ms=int(env.get("LOAD_WORK_CPU_MS", "50")),
            think_min=think_min,
            think_max=think_max,
            max_error_ratio=_optional_float(env, "LOAD_MAX_ERROR_RATIO"),
            max_p95_ms=_optional_float(env, "LOAD_MAX_P95_MS"),
        )


SETTINGS = LoadSettings.from_env(os.environ)

JSON = {"Content-Type": "application/json"}


class PlenoUser(FastHttpUser):
    """A client of the items API that also calls the CPU-burning and the chain endpoints."""

    wait_time = between(SETTINGS.think_min, SETTINGS.think_max)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.item_ids: list[int] = []

    def on_start(self) -> None:
        # get/update need an id that exists: every user starts by creating its own item.
        self.create_item()

    def create_item(self) -> None:
        body = {
            # uuid: names are unique, so parallel users never collide into a 409.
            "name": f"load-{uuid.uuid4().hex}",
            "description": "created by the Pleno load test",
            "quantity": random.randint(0, 100),  # noqa: S311 - test data, not a secret
        }
        with self.client.post(
            "/api/v1/items", json=body, headers=JSON, name="/api/v1/items", catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"create: expected 201, got {response.status_code}")
                return
            self.item_ids.append(int(response.json()["id"]))
            del self.item_ids[:-KNOWN_ITEMS]

    def _item_id(self) -> int | None:
        return random.choice(self.item_ids) if self.item_ids else None  # noqa: S311

    def list_items(self) -> None:
        offset = random.choice((0, 0, 0, 20, 40))  # noqa: S311 - mostly the first page
        self.client.get(f"/api/v1/items?limit=20&offset={offset}", name="/api/v1/items")

    def get_item(self) -> None:
        item_id = self._item_id()
        if item_id is None:
            self.create_item()
            return
        self.client.get(f"/api/v1/items/{item_id}", name="/api/v1/items/{item_id}")

    def update_item(self) -> None:
        item_id = self._item_id()
        if item_id is None:
            self.create_item()
            return
        self.client.patch(
            f"/api/v1/items/{item_id}",
            json={"quantity": random.randint(0, 100)},  # noqa: S311
            headers=JSON,
            name="/api/v1/items/{item_id}",
        )

    def work(self) -> None:
        self.client.get(f"/api/v1/work?cpu_ms={SETTINGS.work_cpu_ms}", name="/api/v1/work")

    def chain(self) -> None:
        self.client.get("/api/v1/chain", name="/api/v1/chain")


TASKS: Mapping[str, Callable[[PlenoUser], None]] = {
    "list": PlenoUser.list_items,
    "get": PlenoUser.get_item,
    "create": PlenoUser.create_item,
    "update": PlenoUser.update_item,
    "work": PlenoUser.work,
    "chain": PlenoUser.chain,
}
# A task listed `weight` times is picked with that weight (what Locust does with a dict, too).
PlenoUser.tasks = [TASKS[name] for name, weight in SETTINGS.mix.items() for _ in range(weight)]


def threshold_breaches(
    requests: int, failures: int, p95_ms: float, settings: LoadSettings
) -> list[str]:
    """The thresholds this run broke, as readable sentences (empty when it passed)."""
    breaches: list[str] = []
    ratio = failures / requests if requests else 0.0
    if settings.max_error_ratio is not None and ratio > settings.max_error_ratio:
        breaches.append(
            f"error ratio {ratio:.4f} ({failures}/{requests}) > {settings.max_error_ratio}"
        )
    if settings.max_p95_ms is not None and p95_ms > settings.max_p95_ms:
        breaches.append(f"p95 {p95_ms:.0f} ms > {settings.max_p95_ms:.0f} ms")
    if requests == 0 and (settings.max_error_ratio is not None or settings.max_p95_ms is not None):
        breaches.append("no request completed")
    return breaches


def _check_thresholds(environment: Environment, **_kwargs: Any) -> None:
    if SETTINGS.max_error_ratio is None and SETTINGS.max_p95_ms is None:
        return  # Locust's default applies: exit 1 on any failure
    total = environment.stats.total
    p95 = float(total.get_response_time_percentile(0.95) or 0)
    breaches = threshold_breaches(total.num_requests, total.num_failures, p95, SETTINGS)
    for breach in breaches:
        log.error("threshold breached: %s", breach)
    if not breaches:
        log.info(
            "thresholds met: error ratio %.4f <= %s, p95 %.0f ms <= %s ms",
            total.fail_ratio,
            SETTINGS.max_error_ratio,
            p95,
            SETTINGS.max_p95_ms,
        )
    environment.process_exit_code = 1 if breaches else 0


# Locust's EventHook.add_listener carries no annotations, hence the one ignore.
events.quitting.add_listener(_check_thresholds)  # type: ignore[no-untyped-call]
