"""Settings, read from the environment once at start (docs/api.md, "Configuration")."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from taskflow.domain.flow import FlowLimits, parse_queue_limits

T = TypeVar("T")

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/taskflow"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEV_DATABASE_URL = "sqlite+aiosqlite:///./taskflow.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Mode = Literal["server", "dev"]


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = DEFAULT_REDIS_URL  # None: the in-process queue (`taskflow dev` only)
    redis_prefix: str = "taskflow"
    tasks: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_processes: int = 1
    worker_concurrency: int = 16
    worker_prefetch: int = 240
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    sweep_seconds: float = 5.0
    shutdown_grace_seconds: float = 30.0
    retry_backoff_base: float = 1.0
    retry_backoff_max: float = 300.0
    max_payload_bytes: int = 262_144
    max_body_bytes: int = 8_388_608
    debug_tasks: bool = True
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    faults: frozenset[str] = frozenset()  # crash points, for fault tests only
    queue_limits: Mapping[str, FlowLimits] = field(default_factory=dict)  # over the Registry's

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, mode: Mode = "server"
    ) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        dev = mode == "dev"
        settings = cls(
            database_url=env.text(
                "TASKFLOW_DATABASE_URL", DEV_DATABASE_URL if dev else DEFAULT_DATABASE_URL
            ),
            redis_url=env.optional_text("TASKFLOW_REDIS_URL", None if dev else DEFAULT_REDIS_URL),
            redis_prefix=env.text("TASKFLOW_REDIS_PREFIX", "taskflow"),
            tasks=env.optional_text("TASKFLOW_TASKS", None),
            host=env.text("TASKFLOW_HOST", "127.0.0.1"),
            port=env.number("TASKFLOW_PORT", 8000, int, low=1, high=65535),
            api_processes=env.number("TASKFLOW_API_PROCESSES", 1, int, low=1, high=64),
            worker_concurrency=env.number(
                "TASKFLOW_WORKER_CONCURRENCY", 16, int, low=1, high=10_000
            ),
            worker_prefetch=env.number("TASKFLOW_WORKER_PREFETCH", 240, int, low=0, high=10_000),
            lease_seconds=env.number("TASKFLOW_LEASE_SECONDS", 30.0, float, low=0.1),
            heartbeat_seconds=env.number("TASKFLOW_HEARTBEAT_SECONDS", 10.0, float, low=0.05),
            sweep_seconds=env.number("TASKFLOW_SWEEP_SECONDS", 5.0, float, low=0.05),
            shutdown_grace_seconds=env.number(
                "TASKFLOW_SHUTDOWN_GRACE_SECONDS", 30.0, float, low=0
            ),
            retry_backoff_base=env.number(
                "TASKFLOW_RETRY_BACKOFF_BASE", 1.0, float, low=0.001, high=86_400
            ),
            retry_backoff_max=env.number(
                "TASKFLOW_RETRY_BACKOFF_MAX", 300.0, float, low=0.001, high=30 * 86_400
            ),
            max_payload_bytes=env.number("TASKFLOW_MAX_PAYLOAD_BYTES", 262_144, int, low=2),
            max_body_bytes=env.number("TASKFLOW_MAX_BODY_BYTES", 8_388_608, int, low=64),
            debug_tasks=env.flag("TASKFLOW_DEBUG_TASKS", True),
            log_level=env.choice("TASKFLOW_LOG_LEVEL", "INFO", LOG_LEVELS),
            log_format=env.choice(
                "TASKFLOW_LOG_FORMAT", "console" if dev else "json", ("json", "console")
            ),  # type: ignore[arg-type]
            faults=env.faults("TASKFLOW_FAULTS"),
            queue_limits=env.parsed("TASKFLOW_QUEUE_LIMITS", parse_queue_limits, {}),
        )
        settings._check()
        if not dev and settings.redis_url is None:
            # An in-process queue per process would leave api and workers to meet only through
            # the sweep: only `taskflow dev`, one process, runs without Redis.
            raise ConfigError(
                "TASKFLOW_REDIS_URL is empty: taskflow api and worker need a Redis server "
                "(only taskflow dev runs without one)"
            )
        return settings

    def _check(self) -> None:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ConfigError(
                "TASKFLOW_HEARTBEAT_SECONDS must be shorter than TASKFLOW_LEASE_SECONDS "
                f"({self.heartbeat_seconds} >= {self.lease_seconds})"
            )
        if self.retry_backoff_max < self.retry_backoff_base:
            raise ConfigError(
                "TASKFLOW_RETRY_BACKOFF_MAX must be at least TASKFLOW_RETRY_BACKOFF_BASE"
            )
        if not self.database_url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ConfigError(
                "TASKFLOW_DATABASE_URL must start with postgresql+asyncpg:// or sqlite+aiosqlite://"
            )
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ConfigError("TASKFLOW_REDIS_URL must start with redis://, rediss:// or unix://")
        if self.tasks is not None and ":" not in self.tasks:
            raise ConfigError(f"TASKFLOW_TASKS must look like module:attribute, got {self.tasks!r}")


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def optional_text(self, name: str, default: str | None) -> str | None:
        return self._raw(name) if name in self._environ else default

    def number(
        self,
        name: str,
        default: T,
        kind: Callable[[str], T],
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{name} must be {noun}, got {raw!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {raw!r}")
        if (low is not None and value < low) or (high is not None and value > high):  # type: ignore[operator]
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"{name} must be {bounds}, got {raw!r}")
        return value

    def faults(self, name: str) -> frozenset[str]:
        from taskflow.adapters.faults import POINTS

        raw = self._raw(name)
        points = frozenset(p.strip() for p in (raw or "").split(",") if p.strip())
        unknown = sorted(points - set(POINTS))
        if unknown:
            raise ConfigError(
                f"{name}: unknown crash point {unknown[0]!r}; known: {', '.join(POINTS)}"
            )
        return points

    def parsed(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    def flag(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        value = raw.upper() if allowed == LOG_LEVELS else raw.lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return value
