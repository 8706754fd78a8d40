"""A clock the test moves by hand (the domain's `Clock` port)."""

from __future__ import annotations

from datetime import datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def set(self, now: datetime) -> None:
        self.current = now

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
