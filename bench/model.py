"""What a run measures (variants, settings) and what it records (samples), shared by run/report."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

Kind = Literal["bare", "pleno", "anchor", "lean"]


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    kind: Kind
    switches: Mapping[str, str] = field(default_factory=dict)  # PLENO_* telemetry switches
    sampling: float | None = None  # trace sampling ratio; None: no OTLP endpoint, no tracing

    @property
    def traced(self) -> bool:
        return self.sampling is not None


_OFF = {"PLENO_METRICS_ENABLED": "false", "PLENO_ACCESS_LOG_ENABLED": "false"}
_METRICS = {"PLENO_METRICS_ENABLED": "true", "PLENO_ACCESS_LOG_ENABLED": "false"}
_METRICS_LOGS = {"PLENO_METRICS_ENABLED": "true", "PLENO_ACCESS_LOG_ENABLED": "true"}

BARE = Variant("bare", "bare FastAPI", "bare")
OFF = Variant("off", "Pleno, telemetry off", "pleno", _OFF)
METRICS = Variant("metrics", "Pleno, metrics", "pleno", _METRICS)
METRICS_LOGS = Variant("metrics_logs", "Pleno, metrics + logs", "pleno", _METRICS_LOGS)
TRACES_10 = Variant("traces_10", "Pleno, metrics + logs + traces 10%", "pleno", _METRICS_LOGS, 0.1)
TRACES_100 = Variant(
    "traces_100", "Pleno, metrics + logs + traces 100%", "pleno", _METRICS_LOGS, 1.0
)
ANCHOR = Variant("anchor", "anchor: off-the-shelf stack, traces 10%", "anchor", sampling=0.1)
# The reference design (bench/lean_app.py), measured rather than quoted.
LEAN = Variant("lean", "reference: one lean middleware, traces 10%", "lean", sampling=0.1)

# The order of the table, and of each round.
VARIANTS = (BARE, OFF, METRICS, METRICS_LOGS, TRACES_10, TRACES_100, ANCHOR, LEAN)

# Start to ready is timed on Pleno exactly as shipped (no switches set) in a phase of its own;
# every variant's start is also timed in each round, which covers the other configurations.
PLENO_DEFAULT = Variant("pleno_default", "Pleno, default settings", "pleno")
START_VARIANTS = (PLENO_DEFAULT,)


@dataclass(frozen=True)
class Config:
    duration_s: float = 10.0
    rounds: int = 3
    warmup_s: float = 2.0
    connections: int = 32
    rss_requests: int = 10_000
    starts: int = 5
    server_cpu: int | None = 0
    client_cpu: int | None = 1
    variants: tuple[Variant, ...] = VARIANTS
    publish: bool = False

    @classmethod
    def from_environment(cls) -> Config:
        """BENCH_* overrides, e.g. BENCH_DURATION=3 BENCH_ROUNDS=1 BENCH_STARTS=2 (smoke run)."""
        env = os.environ
        default = cls()
        wanted = [k.strip() for k in env.get("BENCH_VARIANTS", "").split(",") if k.strip()]
        known = {v.key: v for v in VARIANTS}
        unknown = [k for k in wanted if k not in known]
        if unknown:
            raise ValueError(f"BENCH_VARIANTS: unknown {unknown}; known: {', '.join(known)}")
        # The baseline always runs: every number in the report is a ratio to it.
        variants = (BARE, *(known[k] for k in wanted if k != BARE.key)) if wanted else VARIANTS
        return cls(
            duration_s=_number(env, "BENCH_DURATION", default.duration_s, float, minimum=1),
            rounds=_number(env, "BENCH_ROUNDS", default.rounds, int, minimum=1),
            warmup_s=_number(env, "BENCH_WARMUP", default.warmup_s, float, minimum=0),
            connections=_number(env, "BENCH_CONNECTIONS", default.connections, int, minimum=1),
            rss_requests=_number(env, "BENCH_RSS_REQUESTS", default.rss_requests, int, minimum=1),
            starts=_number(env, "BENCH_STARTS", default.starts, int, minimum=0),
            variants=variants,
            publish=env.get("BENCH_PUBLISH", "") == "1",
        )


_N = TypeVar("_N", int, float)


def _number(
    env: Mapping[str, str], name: str, default: _N, kind: Callable[[str], _N], *, minimum: _N
) -> _N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass
class Sample:
    """One server lifetime within one round: start, (RSS probe), warm-up, measurement, stop."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests_served: int  # every /version request of this lifetime, warm-up included
    start_s: float
    rss_end_mib: float  # right after the measurement
    rss_after_load_mib: float | None = None  # after exactly Config.rss_requests (first round)
    spans: int = 0
    server_spans: int = 0
    log_lines: int = 0  # output lines that mention /version: one per request when logging
    errors: int = 0  # socket errors and non-2xx responses during the measurement


@dataclass
class VariantResult:
    variant: Variant
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def median(self, pick: Callable[[Sample], float]) -> float | None:
        values = [pick(s) for s in self.samples]
        return statistics.median(values) if values else None

    @property
    def rps(self) -> float | None:
        return self.median(lambda s: s.rps)

    @property
    def p50_ms(self) -> float | None:
        return self.median(lambda s: s.p50_ms)

    @property
    def p99_ms(self) -> float | None:
        return self.median(lambda s: s.p99_ms)

    @property
    def start_s(self) -> float | None:
        return self.median(lambda s: s.start_s)

    @property
    def rss_after_load_mib(self) -> float | None:
        values = [s.rss_after_load_mib for s in self.samples if s.rss_after_load_mib is not None]
        return max(values) if values else None

    @property
    def requests_served(self) -> int:
        return sum(s.requests_served for s in self.samples)

    @property
    def spans(self) -> int:
        return sum(s.spans for s in self.samples)

    @property
    def server_spans(self) -> int:
        return sum(s.server_spans for s in self.samples)

    @property
    def log_lines(self) -> int:
        return sum(s.log_lines for s in self.samples)

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.samples)


@dataclass
class StartResult:
    variant: Variant
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None
