"""Fault injection decisions: seeded, so a run with PLENO_CHAOS_SEED is reproducible."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Fault:
    latency_s: float  # added before the request is handled; 0 for none
    status: int | None  # 500 or 503 to answer instead of the handler; None for none


class FaultInjector:
    def __init__(self, error_rate: float, latency_ms: int, seed: int | None) -> None:
        self.error_rate = error_rate
        self.latency_ms = latency_ms
        # Not for security: a reproducible pseudo-random fault sequence is the point.
        self._random = random.Random(seed)  # noqa: S311
        self.injected_errors_by_status: dict[int, int] = {}
        self.injected_latency_s = 0.0

    @property
    def enabled(self) -> bool:
        return self.error_rate > 0 or self.latency_ms > 0

    @property
    def injected_errors(self) -> int:
        return sum(self.injected_errors_by_status.values())

    def next_fault(self) -> Fault:
        latency = self._random.uniform(0, self.latency_ms) / 1000 if self.latency_ms else 0.0
        status = None
        if self.error_rate and self._random.random() < self.error_rate:
            status = self._random.choice((500, 503))
            self.injected_errors_by_status[status] = (
                self.injected_errors_by_status.get(status, 0) + 1
            )
        self.injected_latency_s += latency
        return Fault(latency, status)
