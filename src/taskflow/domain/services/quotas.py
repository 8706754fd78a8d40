"""Per-tenant quotas on submissions (docs/security.md, "Quotas"; decision 37)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from taskflow.domain.errors import InvalidSubmission, QueueUnavailable
from taskflow.domain.ports import QuotaCounter, TaskRepository
from taskflow.domain.quotas import Counted, Quota, QuotaPolicy, Seed, batch_problem, refusal

#: How often a refused seed (another process set the count meanwhile, and it lapsed already)
#: is read again before the submission is refused as if the quota were full.
RECOUNT_TRIES: Final = 3
#: The shortest time between two warnings that the counter is unreachable.
WARN_EVERY_SECONDS: Final = 10.0


class QuotaService:
    """Whether a tenant may submit some tasks now; the counter counts for every API process.

    ``of`` is all a submission of a tenant without a quota costs: one dict lookup. A counter
    that cannot be reached admits the submission (the store, not the counter, is the source of
    truth, and submitting works without Redis), and ``warn`` is told at most once every
    WARN_EVERY_SECONDS. ``monotonic`` times those warnings (seconds).
    """

    def __init__(
        self,
        *,
        policy: QuotaPolicy,
        counter: QuotaCounter,
        store: TaskRepository,
        warn: Callable[[str], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.of = policy.of
        self._counter = counter
        self._store = store
        self._warn = warn
        self._monotonic = monotonic
        self._warned_at = float("-inf")
        # One read of the store per tenant and recount token in this process, however many
        # submissions find the count missing at once.
        self._reading: dict[tuple[str, int], asyncio.Future[int]] = {}

    async def admit(self, tenant: str, quota: Quota, count: int) -> None:
        """Take ``count`` tasks from ``tenant``'s ``quota``; QuotaExceeded (nothing taken) when
        it is over, InvalidSubmission when so many can never pass at once."""
        problem = batch_problem(tenant, quota, count)
        if problem:
            raise InvalidSubmission(problem, field="tasks")
        try:
            counted = await self._take(tenant, quota, count)
        except QueueUnavailable as exc:
            self._unreachable(exc)
            return
        if not counted.admitted:
            raise refusal(tenant, quota, count, counted)

    async def _take(self, tenant: str, quota: Quota, count: int) -> Counted:
        counted = await self._counter.take(tenant, count, quota)
        for _ in range(RECOUNT_TRIES):
            if counted.recount is None:
                return counted
            seed = Seed(await self._recount(tenant, counted.recount), counted.recount)
            counted = await self._counter.take(tenant, count, quota, seed=seed)
        # Every read came too late: err on refusing, as when full; the next try reads again.
        return counted if counted.recount is None else Counted(full=True)

    async def _recount(self, tenant: str, token: int) -> int:
        key = (tenant, token)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._store.count_unfinished(tenant))
            self._reading[key] = reading
            reading.add_done_callback(lambda _: self._reading.pop(key, None))
        # Shielded: one caller that gives up (its client left) does not cancel the others' read.
        return await asyncio.shield(reading)

    def _unreachable(self, exc: QueueUnavailable) -> None:
        now = self._monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            self._warn(f"tenant quotas are not counted, submissions are admitted: {exc.message}")
