"""The host clock and time-ordered ids."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from uuid import UUID


class SystemClock:
    """The host's clock, in UTC. Hosts of one deployment are expected to be synchronised."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def uuid7() -> UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then randomness.

    Time-ordered ids keep the primary-key index append-mostly, which matters at high insert rates.
    """
    millis = time.time_ns() // 1_000_000
    try:
        rand = _random80.pop()  # atomic: threads never share a value
    except IndexError:
        rand = _refill()
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return UUID(int=value)


# Random bits drawn from the OS in chunks: one getrandom() call per task cost the API more
# than the rest of building an id (a tenth of its CPU under batch submissions).
_RANDOM_CHUNK = 256
_random80: list[int] = []
# A forked child must not hand out the ids its parent will.
os.register_at_fork(after_in_child=_random80.clear)


def _refill() -> int:
    data = os.urandom(10 * _RANDOM_CHUNK)
    _random80.extend(int.from_bytes(data[i : i + 10], "big") for i in range(10, len(data), 10))
    return int.from_bytes(data[:10], "big")
