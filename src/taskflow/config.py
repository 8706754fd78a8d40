"""Settings, read from the environment once at start (docs/api.md, "Configuration")."""

from __future__ import annotations

import base64
import binascii
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from taskflow.adapters import otel
from taskflow.domain.callbacks import CallbackHosts
from taskflow.domain.deliveries import DELIVERY_WINDOW_DEFAULT
from taskflow.domain.flow import FlowLimits, parse_queue_limits
from taskflow.domain.limits import queue_name_problem
from taskflow.domain.quotas import QuotaPolicy, parse_tenant_quotas
from taskflow.domain.retention import MAX_RETENTION_DAYS

T = TypeVar("T")

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/taskflow"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEV_DATABASE_URL = "sqlite+aiosqlite:///./taskflow.db"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The shortest webhook signing key accepted, in bytes (Standard Webhooks asks for 24 to 64).
WEBHOOK_SECRET_MIN_BYTES = 16
#: The settings that hold secrets: each may come from a file, named by ``<name>_FILE``
#: (Docker and Kubernetes secrets), instead of the variable itself (docs/security.md).
SECRET_SETTINGS = ("TASKFLOW_DATABASE_URL", "TASKFLOW_REDIS_URL", "TASKFLOW_WEBHOOK_SECRET")

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
    worker_heartbeat_seconds: float = 5.0  # a worker's beat in the fleet; 3 missed: gone
    sweep_seconds: float = 5.0
    shutdown_grace_seconds: float = 30.0
    retry_backoff_base: float = 1.0
    retry_backoff_max: float = 300.0
    max_payload_bytes: int = 262_144
    max_body_bytes: int = 8_388_608
    body_timeout_seconds: float = 30.0  # a request body not all in by then: 408
    debug_tasks: bool = True
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    schedule_catchup_seconds: float = 3600.0  # missed periodic ticks younger than this run
    retention_days: int = 7  # 0: finished tasks are kept for ever
    retention_days_by_queue: Mapping[str, int] = field(default_factory=dict)
    faults: frozenset[str] = frozenset()  # crash points, for fault tests only
    webhook_secret: bytes | None = None  # None: completion webhooks are off
    callback_allowed_hosts: CallbackHosts = field(default_factory=CallbackHosts)
    callback_retry_seconds: float = DELIVERY_WINDOW_DEFAULT
    callback_timeout_seconds: float = 10.0
    queue_limits: Mapping[str, FlowLimits] = field(default_factory=dict)  # over the Registry's
    tenant_quotas: QuotaPolicy = field(default_factory=QuotaPolicy)  # empty: no quota (decision 37)
    metrics: bool = True  # False: nothing is counted and /metrics is not served
    worker_http_port: int | None = None  # None: a worker serves no /metrics nor /health/*
    tracing: otel.TracingMode = "auto"  # on when a tracer provider is set (decision 28)
    auth: Literal["on", "disabled"] = "on"  # on: keys are checked once one exists (decision 30)
    metrics_auth: bool = False  # True: /metrics asks for a key with the read scope

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, mode: Mode = "server"
    ) -> Settings:
        env = _Env(with_secret_files(os.environ if environ is None else environ))
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
            worker_heartbeat_seconds=env.number(
                "TASKFLOW_WORKER_HEARTBEAT_SECONDS", 5.0, float, low=0.05, high=3600
            ),
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
            body_timeout_seconds=env.number(
                "TASKFLOW_BODY_TIMEOUT_SECONDS", 30.0, float, low=0.1, high=3600
            ),
            debug_tasks=env.flag("TASKFLOW_DEBUG_TASKS", True),
            log_level=env.choice("TASKFLOW_LOG_LEVEL", "INFO", LOG_LEVELS),
            log_format=env.choice(
                "TASKFLOW_LOG_FORMAT", "console" if dev else "json", ("json", "console")
            ),  # type: ignore[arg-type]
            schedule_catchup_seconds=env.number(
                "TASKFLOW_SCHEDULE_CATCHUP_SECONDS", 3600.0, float, low=0
            ),
            retention_days=env.number(
                "TASKFLOW_RETENTION_DAYS", 7, int, low=0, high=MAX_RETENTION_DAYS
            ),
            retention_days_by_queue=env.days_by_queue("TASKFLOW_RETENTION_DAYS_BY_QUEUE"),
            faults=env.faults("TASKFLOW_FAULTS"),
            webhook_secret=env.webhook_secret("TASKFLOW_WEBHOOK_SECRET"),
            callback_allowed_hosts=env.hosts("TASKFLOW_CALLBACK_ALLOWED_HOSTS"),
            callback_retry_seconds=env.number(
                "TASKFLOW_CALLBACK_RETRY_SECONDS",
                DELIVERY_WINDOW_DEFAULT,
                float,
                low=0,
                high=30 * 86_400,
            ),
            callback_timeout_seconds=env.number(
                "TASKFLOW_CALLBACK_TIMEOUT_SECONDS", 10.0, float, low=0.1, high=300
            ),
            queue_limits=env.parsed("TASKFLOW_QUEUE_LIMITS", parse_queue_limits, {}),
            tenant_quotas=env.parsed("TASKFLOW_TENANT_QUOTAS", parse_tenant_quotas, QuotaPolicy()),
            metrics=env.flag("TASKFLOW_METRICS", True),
            worker_http_port=env.optional_port("TASKFLOW_WORKER_HTTP_PORT"),
            tracing=env.choice("TASKFLOW_TRACING", "auto", ("auto", "on", "off")),  # type: ignore[arg-type]
            auth=env.choice("TASKFLOW_AUTH", "on", ("on", "disabled")),  # type: ignore[arg-type]
            metrics_auth=env.flag("TASKFLOW_METRICS_AUTH", False),
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
        urls = {"TASKFLOW_DATABASE_URL": self.database_url, "TASKFLOW_REDIS_URL": self.redis_url}
        for name, url in urls.items():
            if url is not None and not _readable_url(url):
                raise ConfigError(
                    f"{name}: its host or port cannot be read (the value is not shown: it may "
                    "hold a password)"
                )
        if self.tracing == "on" and not otel.installed():
            raise ConfigError(
                "TASKFLOW_TRACING=on needs OpenTelemetry: pip install 'taskflow[otel]'"
            )
        if self.tasks is not None and ":" not in self.tasks:
            raise ConfigError(f"TASKFLOW_TASKS must look like module:attribute, got {self.tasks!r}")


def _readable_url(url: str) -> bool:
    try:
        urlsplit(url).port  # noqa: B018 -- raises ValueError for a port that is not one
    except ValueError:
        return False
    return True


def with_secret_files(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ``, with each secret setting given as ``<name>_FILE`` read from its file.

    One trailing newline is dropped (what ``echo`` and editors add); the file must not be empty.
    """
    named = [n for n in SECRET_SETTINGS if environ.get(f"{n}_FILE", "").strip()]
    if not named:
        return environ
    found = dict(environ)
    for name in named:
        path = environ[f"{name}_FILE"].strip()
        if environ.get(name, "").strip():
            raise ConfigError(f"{name} and {name}_FILE are both set; give one")
        try:
            with open(path, encoding="utf-8") as file:
                value = file.read().removesuffix("\n").removesuffix("\r")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ConfigError(f"{name}_FILE: cannot read {path!r}: {reason}") from None
        if not value.strip():
            raise ConfigError(f"{name}_FILE: {path!r} is empty")
        found[name] = value
    return found


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
        raw: str | None = None,
    ) -> T:
        raw = self._raw(name) if raw is None else raw
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

    def optional_port(self, name: str) -> int | None:
        if self._raw(name) is None:
            return None
        return self.number(name, 0, int, low=1, high=65535)

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

    def days_by_queue(self, name: str) -> dict[str, int]:
        """``queue=days`` pairs, comma-separated: ``audit=90,mail=1``."""
        found: dict[str, int] = {}
        for item in (self._raw(name) or "").split(","):
            if not item.strip():
                continue
            queue, sep, days = (part.strip() for part in item.partition("="))
            if not sep or queue_name_problem(queue):
                raise ConfigError(f"{name} must look like queue=days,queue=days, got {item!r}")
            if queue in found:
                raise ConfigError(f"{name} names the queue {queue!r} twice")
            found[queue] = self.number(
                f"{name} ({queue})", 0, int, low=0, high=MAX_RETENTION_DAYS, raw=days
            )
        return found

    def webhook_secret(self, name: str) -> bytes | None:
        """``whsec_`` and base64 (the Standard Webhooks form) is the key those bytes; any
        other text is the key as UTF-8."""
        raw = self._raw(name)
        if raw is None:
            return None
        key = raw.encode()
        if raw.startswith("whsec_"):
            try:
                key = base64.b64decode(raw.removeprefix("whsec_"), validate=True)
            except binascii.Error:
                raise ConfigError(f"{name}: the part after whsec_ is not base64") from None
        if len(key) < WEBHOOK_SECRET_MIN_BYTES:
            raise ConfigError(f"{name} must be at least {WEBHOOK_SECRET_MIN_BYTES} bytes long")
        return key

    def hosts(self, name: str) -> CallbackHosts:
        try:
            return CallbackHosts.parse((self._raw(name) or "").split(","))
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None

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
