"""Every knob of the service, read once from the environment (prefix ``PLENO_``).

This is the only module that reads the environment; everything else receives a ``Settings``.
The README's settings table lists the same fields and defaults: keep the two in step.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "PLENO_"


class SettingsError(Exception):
    """An environment value is invalid; the message is one line that names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, populate_by_name=True
    )

    # Identity
    service_name: str = "pleno"
    build_commit: str = "unknown"  # set at image build time (Dockerfile ARG -> ENV)
    build_date: str = "unknown"
    pod_name: str | None = None  # downward API in Kubernetes; falls back to the hostname
    pod_namespace: str | None = None
    node_name: str | None = None  # downward API; names the node in trace resources

    # Server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"
    # auto: JSON when stdout is not a terminal (containers, files), text on a terminal.
    log_format: Literal["auto", "json", "text"] = "auto"
    access_log_enabled: bool = True
    probe_log_level: str = "debug"  # /health, /ready and /metrics would otherwise flood INFO
    metrics_enabled: bool = True
    docs_enabled: bool = True
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    admin_token: SecretStr | None = None

    # Shutdown: readiness fails at once, traffic is still served for shutdown_delay seconds so
    # endpoints can drop the pod, then in-flight requests get up to drain_timeout seconds.
    shutdown_delay: float = Field(default=5.0, ge=0)
    drain_timeout: float = Field(default=15.0, gt=0)

    # Database
    database_url: str = "sqlite+aiosqlite:///./var/pleno.db"
    migrate_on_start: bool | None = None  # None: true for SQLite, false otherwise
    db_timeout: float = Field(default=2.0, gt=0)  # connect, statement and pool-wait bound
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    ready_timeout: float = Field(default=1.0, gt=0)

    # Autoscaling and tracing helpers
    work_max_cpu_ms: int = Field(default=1000, ge=1)
    work_concurrency: int = Field(default=4, ge=1)
    downstream_urls: Annotated[list[AnyHttpUrl], NoDecode] = Field(default_factory=list)
    downstream_timeout: float = Field(default=2.0, gt=0)
    chain_max_depth: int = Field(default=5, ge=1)

    # Fault injection: applies to /api/* only
    # /status/{code} and /delay/{seconds} count against the SLOs (a drill burns budget like a
    # real failure), so on an exposed production service anyone could page the on-call with
    # them: the production overlay turns them off.
    chaos_endpoints_enabled: bool = True
    delay_max_seconds: float = Field(default=30.0, ge=0)
    chaos_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    chaos_latency_ms: int = Field(default=0, ge=0)
    chaos_seed: int | None = None

    # Tracing: the standard OpenTelemetry variables, unprefixed. Off unless an endpoint is set.
    otel_exporter_otlp_endpoint: AnyHttpUrl | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otel_exporter_otlp_traces_endpoint: AnyHttpUrl | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = Field(
        default="http/protobuf", validation_alias="OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    otel_traces_sampler: Literal[
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    ] = Field(default="parentbased_traceidratio", validation_alias="OTEL_TRACES_SAMPLER")
    otel_traces_sampler_arg: float = Field(
        default=0.1, ge=0.0, le=1.0, validation_alias="OTEL_TRACES_SAMPLER_ARG"
    )
    # Span batching, by the SDK's own variables but with smaller defaults than its 512-span
    # batches every 5 s: exporting a big batch holds the GIL long enough to show in p99 latency
    # (docs/telemetry.md). Beyond the queue's size the SDK drops spans rather than grow memory.
    otel_bsp_schedule_delay: int = Field(
        default=500, gt=0, validation_alias="OTEL_BSP_SCHEDULE_DELAY"
    )  # milliseconds
    otel_bsp_max_export_batch_size: int = Field(
        default=64, gt=0, validation_alias="OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
    )
    otel_bsp_max_queue_size: int = Field(
        default=2048, gt=0, validation_alias="OTEL_BSP_MAX_QUEUE_SIZE"
    )

    @field_validator("downstream_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        # Comma-separated in the environment: PLENO_DOWNSTREAM_URLS=http://a/x,http://b/y
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_level", "probe_log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("must be one of critical, error, warning, info, debug")
        return level

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the usual sync URLs and pick the async driver this service needs."""
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise ValueError("must look like sqlite:///path or postgresql://user@host/db")
        aliases = {
            "sqlite": "sqlite+aiosqlite",
            "postgres": "postgresql+asyncpg",
            "postgresql": "postgresql+asyncpg",
        }
        scheme = aliases.get(scheme, scheme)
        if scheme not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
            raise ValueError("only SQLite and PostgreSQL are supported")
        return f"{scheme}://{rest}"

    @model_validator(mode="after")
    def _batch_fits_queue(self) -> Self:
        batch, queue = self.otel_bsp_max_export_batch_size, self.otel_bsp_max_queue_size
        if batch > queue:
            raise ValueError(
                f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE={batch} must not exceed "
                f"OTEL_BSP_MAX_QUEUE_SIZE={queue}"
            )
        return self

    @model_validator(mode="after")
    def _default_migrate_on_start(self) -> Self:
        if self.migrate_on_start is None:
            object.__setattr__(self, "migrate_on_start", self.is_sqlite)
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def otlp_traces_endpoint(self) -> str | None:
        """Where spans go, per the OTLP spec: the signal URL as given, or base + /v1/traces."""
        if self.otel_exporter_otlp_traces_endpoint is not None:
            return str(self.otel_exporter_otlp_traces_endpoint)
        if self.otel_exporter_otlp_endpoint is not None:
            return str(self.otel_exporter_otlp_endpoint).rstrip("/") + "/v1/traces"
        return None


def env_name(field: str) -> str:
    """The environment variable that sets a field."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Build Settings from the environment, turning validation errors into one-line messages."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


_SECRET_FIELDS = frozenset({"database_url", "admin_token"})


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        if not error["loc"]:  # a check across fields: its message names the variables itself
            problems.append(str(error.get("ctx", {}).get("error", error["msg"])))
            continue
        field = str(error["loc"][0])
        value = error.get("input")
        # Never echo values that may carry credentials.
        visible = field not in _SECRET_FIELDS and isinstance(value, str | int | float)
        shown = f"={value!r}" if visible else ""
        variable = env_name(field) if field in Settings.model_fields else field
        problems.append(f"{variable}{shown}: {error['msg']}")
    return "invalid setting " + "; ".join(problems)
