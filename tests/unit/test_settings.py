"""Settings: one typed source, read from PLENO_* variables."""

from __future__ import annotations

import pytest

from pleno.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os  # noqa: PLC0415

    for key in list(os.environ):
        if key.startswith("PLENO_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url == "sqlite+aiosqlite:///./var/pleno.db"
    assert settings.migrate_on_start is True
    assert settings.shutdown_delay == 5.0
    assert settings.downstream_urls == []
    assert settings.chaos_error_rate == 0.0
    assert settings.chaos_latency_ms == 0
    assert settings.chaos_seed is None
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.admin_token is None
    assert settings.docs_enabled is True
    assert settings.ready_timeout == 1.0
    assert settings.work_max_cpu_ms == 1000
    assert settings.delay_max_seconds == 30.0
    assert settings.otlp_traces_endpoint is None  # tracing off
    assert settings.otel_traces_sampler == "parentbased_traceidratio"
    assert settings.otel_traces_sampler_arg == 0.1
    assert settings.otel_bsp_schedule_delay == 500
    assert settings.otel_bsp_max_export_batch_size == 64
    assert settings.otel_bsp_max_queue_size == 2048


def test_span_batches_cannot_exceed_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == (
        "invalid setting OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4096 must not exceed "
        "OTEL_BSP_MAX_QUEUE_SIZE=2048"
    )
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8192")
    assert load_settings().otel_bsp_max_export_batch_size == 4096


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLENO_PORT", "9000")
    monkeypatch.setenv("PLENO_DOWNSTREAM_URLS", "http://a:8000/api/v1/chain, http://b:8000/x")
    monkeypatch.setenv("PLENO_ADMIN_TOKEN", "t0ken")
    monkeypatch.setenv("PLENO_DOCS_ENABLED", "false")
    monkeypatch.setenv("PLENO_CHAOS_SEED", "42")
    settings = load_settings()
    assert settings.port == 9000
    assert [str(url) for url in settings.downstream_urls] == [
        "http://a:8000/api/v1/chain",
        "http://b:8000/x",
    ]
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "t0ken"
    assert "t0ken" not in repr(settings)
    assert settings.docs_enabled is False
    assert settings.chaos_seed == 42


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///./var/x.db", "sqlite+aiosqlite:///./var/x.db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_url_gets_the_async_driver(given: str, expected: str) -> None:
    assert Settings(database_url=given).database_url == expected


def test_migrate_on_start_defaults_by_database() -> None:
    assert Settings(database_url="sqlite:///x.db").migrate_on_start is True
    assert Settings(database_url="postgresql://u@h/db").migrate_on_start is False
    explicit = Settings(database_url="postgresql://u@h/db", migrate_on_start=True)
    assert explicit.migrate_on_start is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PLENO_PORT", "abc"),
        ("PLENO_PORT", "70000"),
        ("PLENO_CHAOS_ERROR_RATE", "1.5"),
        ("PLENO_SHUTDOWN_DELAY", "-1"),
        ("PLENO_DOWNSTREAM_URLS", "not a url"),
        ("PLENO_LOG_LEVEL", "loud"),
        ("PLENO_DATABASE_URL", "mysql://root@h/db"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert variable in message
    assert "\n" not in message


def test_credentials_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLENO_DATABASE_URL", "mysql://root:hunter2@h/db")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "hunter2" not in str(raised.value)
