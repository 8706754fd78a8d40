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
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return UUID(int=value)
