"""Settings are read once from the environment; a bad value is one clear error naming it."""

from __future__ import annotations

import pytest

from taskflow.config import DEV_DATABASE_URL, ConfigError, Settings


def test_defaults_follow_the_spec() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == "postgresql+asyncpg://postgres@127.0.0.1:5432/taskflow"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.api_processes == 1
    assert settings.worker_concurrency == 16
    assert (settings.lease_seconds, settings.heartbeat_seconds) == (30, 10)
    assert settings.sweep_seconds == 5
    assert settings.shutdown_grace_seconds == 30
    assert (settings.retry_backoff_base, settings.retry_backoff_max) == (1.0, 300.0)
    assert (settings.max_payload_bytes, settings.max_body_bytes) == (262_144, 8_388_608)
    assert settings.debug_tasks is True
    assert (settings.log_level, settings.log_format) == ("INFO", "json")


def test_dev_mode_is_embedded() -> None:
    settings = Settings.from_env({}, mode="dev")
    assert settings.database_url == DEV_DATABASE_URL
    assert settings.redis_url is None
    assert settings.log_format == "console"


def test_values_are_read_and_converted() -> None:
    settings = Settings.from_env(
        {
            "TASKFLOW_PORT": "9000",
            "TASKFLOW_LEASE_SECONDS": "2.5",
            "TASKFLOW_HEARTBEAT_SECONDS": "0.5",
            "TASKFLOW_DEBUG_TASKS": "false",
            "TASKFLOW_LOG_LEVEL": "debug",
            "TASKFLOW_TASKS": "myapp.tasks:tasks",
            "TASKFLOW_WORKER_HEARTBEAT_SECONDS": "0.25",
        }
    )
    assert settings.port == 9000
    assert settings.worker_heartbeat_seconds == 0.25
    assert settings.lease_seconds == 2.5
    assert settings.debug_tasks is False
    assert settings.log_level == "DEBUG"
    assert settings.tasks == "myapp.tasks:tasks"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TASKFLOW_PORT", "http"),
        ("TASKFLOW_PORT", "70000"),
        ("TASKFLOW_API_PROCESSES", "0"),
        ("TASKFLOW_WORKER_CONCURRENCY", "0"),
        ("TASKFLOW_WORKER_PREFETCH", "-1"),
        ("TASKFLOW_WORKER_PREFETCH", "many"),
        ("TASKFLOW_LEASE_SECONDS", "nan"),
        ("TASKFLOW_SWEEP_SECONDS", "-1"),
        ("TASKFLOW_WORKER_HEARTBEAT_SECONDS", "0"),
        ("TASKFLOW_WORKER_HEARTBEAT_SECONDS", "often"),
        ("TASKFLOW_WORKER_HEARTBEAT_SECONDS", "7200"),
        ("TASKFLOW_RETRY_BACKOFF_BASE", "inf"),
        ("TASKFLOW_DEBUG_TASKS", "maybe"),
        ("TASKFLOW_LOG_FORMAT", "xml"),
        ("TASKFLOW_LOG_LEVEL", "LOUD"),
        ("TASKFLOW_DATABASE_URL", "mysql://localhost/x"),
        ("TASKFLOW_REDIS_URL", "memcached://x"),
        ("TASKFLOW_TASKS", "no_colon_here"),
        ("TASKFLOW_WORKER_HTTP_PORT", "0"),
        ("TASKFLOW_WORKER_HTTP_PORT", "metrics"),
        ("TASKFLOW_WORKER_HTTP_PORT", "65536"),
        ("TASKFLOW_METRICS", "sometimes"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_heartbeat_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ConfigError, match="TASKFLOW_HEARTBEAT_SECONDS"):
        Settings.from_env({"TASKFLOW_LEASE_SECONDS": "5", "TASKFLOW_HEARTBEAT_SECONDS": "5"})


def test_backoff_max_must_not_be_below_base() -> None:
    with pytest.raises(ConfigError, match="TASKFLOW_RETRY_BACKOFF_MAX"):
        Settings.from_env({"TASKFLOW_RETRY_BACKOFF_BASE": "10", "TASKFLOW_RETRY_BACKOFF_MAX": "5"})


def test_an_empty_redis_url_is_refused_outside_dev() -> None:
    with pytest.raises(ConfigError, match="TASKFLOW_REDIS_URL"):
        Settings.from_env({"TASKFLOW_REDIS_URL": ""})
    assert Settings.from_env({"TASKFLOW_REDIS_URL": ""}, mode="dev").redis_url is None


def test_metrics_are_on_and_the_worker_serves_no_http_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.metrics is True
    assert settings.worker_http_port is None
    chosen = Settings.from_env({"TASKFLOW_WORKER_HTTP_PORT": "9464", "TASKFLOW_METRICS": "off"})
    assert chosen.worker_http_port == 9464
    assert chosen.metrics is False
