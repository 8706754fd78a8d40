"""Exponential backoff with equal jitter (docs/api.md, "Life cycle")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before retry n is drawn from [d/2, d], where d = min(max, base * 2**(n-1)).

    ``rand`` is a number in [0, 1] supplied by the caller, so the policy stays deterministic.
    """

    base: float = 1.0
    max: float = 300.0

    def __post_init__(self) -> None:
        if not (0 < self.base < math.inf and 0 < self.max < math.inf):
            raise ValueError("backoff base and max must be positive and finite")

    def with_overrides(self, *, base: float | None, max: float | None) -> RetryPolicy:
        """This policy with a task type's own base or max, where the type sets one."""
        if base is None and max is None:
            return self
        return RetryPolicy(self.base if base is None else base, self.max if max is None else max)

    def ceiling(self, retry: int) -> float:
        if retry < 1:
            raise ValueError("retries are numbered from 1")
        # ldexp is exact; only an overflow can stop it, and then d is max anyway.
        try:
            return min(self.max, math.ldexp(self.base, retry - 1))
        except OverflowError:
            return self.max

    def delay(self, retry: int, rand: float) -> timedelta:
        if not 0.0 <= rand <= 1.0:
            raise ValueError("rand must lie in [0, 1]")
        d = self.ceiling(retry)
        return timedelta(seconds=d / 2 + rand * d / 2)
