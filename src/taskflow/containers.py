"""The composition root: the only place that picks adapters."""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from dependency_injector import containers, providers

from taskflow.adapters.clock import SystemClock, uuid7
from taskflow.adapters.faults import with_faulty_queue, with_faulty_repository
from taskflow.adapters.memory import InMemoryCancelNotices, InMemoryTaskQueue
from taskflow.adapters.memory_fleet import (
    InMemoryPauseNotices,
    InMemoryQueueGauge,
    InMemoryWorkerRegistry,
)
from taskflow.adapters.memory_flow import InMemoryFlowLimiter
from taskflow.adapters.memory_quotas import InMemoryQuotaCounter
from taskflow.adapters.otel import open_tracing
from taskflow.adapters.prometheus import new_metrics
from taskflow.adapters.redis import RedisTaskQueue
from taskflow.adapters.redis import connect as redis_connect
from taskflow.adapters.redis_cancel import RedisCancelNotices
from taskflow.adapters.redis_fleet import (
    RedisPauseNotices,
    RedisQueueGauge,
    RedisWorkerRegistry,
)
from taskflow.adapters.redis_flow import RedisFlowLimiter
from taskflow.adapters.redis_quotas import RedisQuotaCounter
from taskflow.adapters.sql import SqlTaskRepository, create_engine
from taskflow.adapters.sql.notifications import EnqueuedListener
from taskflow.adapters.sql.queues import SqlQueueStore
from taskflow.adapters.sql.schedules import SqlScheduleStore
from taskflow.adapters.webhooks import HttpWebhookSender
from taskflow.config import Settings
from taskflow.domain.callbacks import CallbackHosts
from taskflow.domain.deliveries import DeliveryPolicy
from taskflow.domain.flow import FlowPolicy
from taskflow.domain.ports import (
    CallbackStore,
    KeyStore,
    QuotaCounter,
    TaskQueue,
    TaskRepository,
)
from taskflow.domain.retention import Retention
from taskflow.domain.retry import RetryPolicy
from taskflow.domain.services import (
    ExecutionService,
    RetentionService,
    ScheduleService,
    TaskService,
)
from taskflow.domain.services.delivery import DeliveryService
from taskflow.domain.services.fleet import FleetService
from taskflow.domain.services.keys import KeyService
from taskflow.domain.services.quotas import QuotaService
from taskflow.registry import Registry

if TYPE_CHECKING:
    from taskflow.adapters.otel.spans import Tracing


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _queue_backend(settings: Settings) -> str:
    return "redis" if settings.redis_url else "memory"


def _catchup(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.schedule_catchup_seconds)


def delivery_lease_seconds(settings: Settings) -> float:
    """How long a deliverer holds a webhook it is sending: more than the longest a try can
    take (three times TASKFLOW_CALLBACK_TIMEOUT_SECONDS, see ``HttpWebhookSender``) and its
    record: 40 s at the default 10 s."""
    return 4 * settings.callback_timeout_seconds


def _callback_store(repository: TaskRepository) -> CallbackStore:
    store: CallbackStore = repository.callback_store()  # type: ignore[attr-defined]
    return store


def _key_store(repository: TaskRepository) -> KeyStore:
    store: KeyStore = repository.key_store()  # type: ignore[attr-defined]
    return store


def _key_token() -> str:
    return secrets.token_urlsafe(32)


def _callback_hosts(settings: Settings) -> CallbackHosts | None:
    """None while TASKFLOW_WEBHOOK_SECRET is unset: then callbacks are refused."""
    return settings.callback_allowed_hosts if settings.webhook_secret is not None else None


def _webhook_sender(settings: Settings, clock: SystemClock) -> HttpWebhookSender:
    if settings.webhook_secret is None:
        raise RuntimeError("no TASKFLOW_WEBHOOK_SECRET: webhooks are off")
    return HttpWebhookSender(
        secret=settings.webhook_secret,
        hosts=settings.callback_allowed_hosts,
        clock=clock,
        timeout_seconds=settings.callback_timeout_seconds,
    )


def _traced_queue(queue: TaskQueue, tracing: Tracing | None) -> TaskQueue:
    """The queue, its pushes traced when tracing is on (decision 28)."""
    return queue if tracing is None else tracing.queue(queue)


def _quota_service(
    settings: Settings, counter: Callable[[], QuotaCounter], repository: TaskRepository
) -> QuotaService | None:
    """None without TASKFLOW_TENANT_QUOTAS: then a submission asks nothing of quotas, and no
    counter is made (decision 37)."""
    if not settings.tenant_quotas:
        return None
    return QuotaService(
        policy=settings.tenant_quotas,
        counter=counter(),
        store=repository,
        warn=logging.getLogger("taskflow.api").warning,
        monotonic=time.monotonic,
    )


def _flow_policy(registry: Registry, settings: Settings) -> FlowPolicy:
    return registry.flow_policy(settings.queue_limits)


def _keeps_kinds(policy: FlowPolicy) -> bool:
    """Whether the queue should carry each task's type: only where a type has a limit, so that
    a claim asks the limiter without reading its batch first (decision 21)."""
    return bool(policy.types)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    registry = providers.Dependency(instance_of=Registry)

    clock = providers.Singleton(SystemClock)
    # What this process counts (decision 26); counts nothing with TASKFLOW_METRICS=false.
    metrics = providers.Singleton(new_metrics, settings.provided.metrics)
    retry_policy = providers.Singleton(
        RetryPolicy,
        base=settings.provided.retry_backoff_base,
        max=settings.provided.retry_backoff_max,
    )

    engine = providers.Singleton(create_engine, settings.provided.database_url)
    repository = providers.Singleton(
        with_faulty_repository,
        providers.Singleton(SqlTaskRepository, engine, clock=clock),
        settings.provided.faults,
    )

    # The lease keeper's own: a one-connection engine for the keeper's thread and loop, made
    # anew for each keeper and closed with the repository (``SqlTaskRepository.close``).
    lease_repository = providers.Factory(
        with_faulty_repository,
        providers.Factory(
            SqlTaskRepository.connect, settings.provided.database_url, clock=clock, pool_size=1
        ),
        settings.provided.faults,
    )

    # None while tracing is off (decision 28): then nothing below is wrapped or asked.
    tracing = providers.Singleton(open_tracing, settings.provided.tracing)

    redis_client = providers.Singleton(redis_connect, settings.provided.redis_url)
    flow_policy = providers.Singleton(_flow_policy, registry, settings)
    # The in-process queue of `taskflow dev`, named so that its gauge reads it under any wrapper.
    memory_queue = providers.Singleton(InMemoryTaskQueue, clock)
    queue = providers.Singleton(
        _traced_queue,
        providers.Singleton(
            with_faulty_queue,
            providers.Selector(
                providers.Callable(_queue_backend, settings),
                redis=providers.Singleton(
                    RedisTaskQueue,
                    redis_client,
                    prefix=settings.provided.redis_prefix,
                    clock=clock,
                    kinds=providers.Callable(_keeps_kinds, flow_policy),
                ),
                memory=memory_queue,
            ),
            settings.provided.faults,
        ),
        tracing,
    )

    cancel_notices = providers.Selector(
        providers.Callable(_queue_backend, settings),
        redis=providers.Singleton(
            RedisCancelNotices, redis_client, prefix=settings.provided.redis_prefix
        ),
        memory=providers.Singleton(InMemoryCancelNotices),
    )

    # The fleet (decision 25): live workers and pause notices on Redis, paused queues in the
    # store; `taskflow dev` keeps its workers, depths and notices in its one process.
    worker_registry = providers.Selector(
        providers.Callable(_queue_backend, settings),
        redis=providers.Singleton(
            RedisWorkerRegistry, redis_client, prefix=settings.provided.redis_prefix
        ),
        memory=providers.Singleton(InMemoryWorkerRegistry, clock),
    )
    queue_gauge = providers.Selector(
        providers.Callable(_queue_backend, settings),
        redis=providers.Singleton(
            RedisQueueGauge, redis_client, prefix=settings.provided.redis_prefix, clock=clock
        ),
        memory=providers.Singleton(InMemoryQueueGauge, memory_queue, clock),
    )
    pause_notices = providers.Selector(
        providers.Callable(_queue_backend, settings),
        redis=providers.Singleton(
            RedisPauseNotices, redis_client, prefix=settings.provided.redis_prefix
        ),
        memory=providers.Singleton(InMemoryPauseNotices),
    )

    callback_store = providers.Singleton(_callback_store, repository)
    # API keys (decision 30): one service per process, so its cache of checks is the process's.
    key_store = providers.Singleton(_key_store, repository)
    key_service = providers.Singleton(
        KeyService,
        store=key_store,
        clock=clock,
        new_id=providers.Object(uuid.uuid4),
        token=providers.Object(_key_token),
        monotonic=providers.Object(time.monotonic),
    )
    limiter = providers.Selector(
        providers.Callable(_queue_backend, settings),
        redis=providers.Singleton(
            RedisFlowLimiter, redis_client, prefix=settings.provided.redis_prefix
        ),
        memory=providers.Singleton(InMemoryFlowLimiter, clock),
    )
    # The lease keeper's own, on its thread's loop: a client of its own, closed with it.
    lease_limiter = providers.Factory(
        RedisFlowLimiter,
        providers.Factory(redis_connect, settings.provided.redis_url),
        prefix=settings.provided.redis_prefix,
        owned=True,
    )

    # Tenant quotas (decision 37): counted on Redis for every API process, in memory for
    # `taskflow dev`; the store gives the count of unfinished tasks they start from.
    quota_counter = providers.Selector(
        providers.Callable(_queue_backend, settings),
        redis=providers.Singleton(
            RedisQuotaCounter, redis_client, prefix=settings.provided.redis_prefix
        ),
        memory=providers.Singleton(InMemoryQuotaCounter, clock),
    )
    quotas = providers.Singleton(_quota_service, settings, quota_counter.provider, repository)

    task_service = providers.Singleton(
        TaskService,
        repository=repository,
        queue=queue,
        types=registry,
        clock=clock,
        new_id=providers.Object(uuid7),
        retry_policy=retry_policy,
        cancel_notices=cancel_notices,
        callbacks=callback_store,
        callback_hosts=providers.Callable(_callback_hosts, settings),
        trace=tracing,
        quotas=quotas,
    )
    execution_service = providers.Factory(
        ExecutionService,
        repository=repository,
        queue=queue,
        clock=clock,
        rand=providers.Object(random.random),
        worker_id=providers.Callable(new_worker_id),
        lease_seconds=settings.provided.lease_seconds,
        flow=flow_policy,
        limiter=limiter,
    )

    schedule_store = providers.Singleton(SqlScheduleStore, engine)
    queue_store = providers.Singleton(SqlQueueStore, engine)
    fleet_service = providers.Singleton(
        FleetService,
        workers=worker_registry,
        store=queue_store,
        gauge=queue_gauge,
        clock=clock,
        flow=flow_policy,
        notices=pause_notices,
        beat_seconds=settings.provided.worker_heartbeat_seconds,
    )
    schedule_service = providers.Singleton(
        ScheduleService,
        store=schedule_store,
        queue=queue,
        types=registry,
        clock=clock,
        new_id=providers.Object(uuid7),
        retry_policy=retry_policy,
        timetables=registry.provided.schedules,
        catchup=providers.Callable(_catchup, settings),
        trace=tracing,
    )
    retention_service = providers.Factory(
        RetentionService,
        repository=repository,
        clock=clock,
        retention=providers.Factory(
            Retention,
            days=settings.provided.retention_days,
            days_by_queue=settings.provided.retention_days_by_queue,
        ),
    )
    # Completion webhooks (decision 23); ``render`` (the task's JSON) is the caller's.
    webhook_sender = providers.Singleton(_webhook_sender, settings, clock)
    delivery_service = providers.Factory(
        DeliveryService,
        store=callback_store,
        sender=webhook_sender,
        clock=clock,
        policy=providers.Factory(DeliveryPolicy, window=settings.provided.callback_retry_seconds),
        rand=providers.Object(random.random),
        lease_seconds=providers.Callable(delivery_lease_seconds, settings),
    )


def build_container(settings: Settings, registry: Registry) -> Container:
    return Container(settings=settings, registry=registry)


async def close_container(container: Container) -> None:
    """Release the connections the container's singletons opened."""
    for resource in (container.queue(), container.repository()):
        close = getattr(resource, "close", None)
        if close is not None:
            await close()
    await container.engine().dispose()


def open_lease_service(
    container: Container,
) -> tuple[ExecutionService, Callable[[], Awaitable[None]]]:
    """An execution service on the lease repository, for the lease keeper's thread; returned
    with the function that closes that repository."""
    repository = container.lease_repository()
    if not container.flow_policy().has_slots:
        return container.execution_service(repository=repository), repository.close
    limiter = container.lease_limiter()

    async def close() -> None:
        await limiter.close()
        await repository.close()

    return container.execution_service(repository=repository, limiter=limiter), close


def open_enqueued_listener(
    container: Container, on_ids: Callable[[list[UUID]], Awaitable[object]]
) -> EnqueuedListener | None:
    """A listener for the tasks callers enqueue in their own transactions (``taskflow.enqueue``);
    None when the store is not PostgreSQL, where that is not offered."""
    url: str = container.settings().database_url
    if not url.startswith("postgresql"):
        return None
    return EnqueuedListener(url, on_ids)
