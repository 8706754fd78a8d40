"""What the retention job does: delete finished tasks kept long enough, a batch at a time."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Final

from taskflow.domain.ports import Clock, TaskRepository
from taskflow.domain.retention import PRUNE_BATCH, Cutoffs, Retention

#: The name the retention job's turns are taken under.
JOB: Final = "taskflow.retention"


class RetentionService:
    """Deletes the finished tasks ``retention`` no longer keeps (decision 24)."""

    def __init__(
        self,
        *,
        repository: TaskRepository,
        clock: Clock,
        retention: Retention,
        batch: int = PRUNE_BATCH,
    ) -> None:
        self._repo = repository
        self._clock = clock
        self.retention = retention
        self.batch = batch

    def alone(self) -> AbstractAsyncContextManager[bool]:
        """A pass's turn: True when no other process on the store is pruning until exit."""
        return self._repo.exclusively(JOB)

    def cutoffs(self) -> Cutoffs:
        """The cutoffs as of now; a pass keeps them, so that it ends."""
        return self.retention.cutoffs(self._clock.now())

    async def prune_batch(self, cutoffs: Cutoffs) -> int:
        """Delete at most one batch of the tasks ``cutoffs`` let go; returns how many. Fewer
        than a batch means nothing more was due (or another pruner holds the rest)."""
        return await self._repo.prune_finished(cutoffs, limit=self.batch)
