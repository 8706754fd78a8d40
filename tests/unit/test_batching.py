"""Group commit: concurrent calls share bulk calls, and each caller gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from taskflow.adapters.batching import Coalescer


class Store:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def bulk(self, items: Sequence[int]) -> list[BaseException | None]:
        self.calls.append(list(items))
        await self.gate.wait()
        return [ValueError(f"odd {i}") if i % 2 else None for i in items]


async def test_callers_arriving_during_a_flush_share_the_next_one() -> None:
    store = Store()
    store.gate.clear()
    coalescer = Coalescer(store.bulk)
    first = asyncio.create_task(coalescer.submit(0))
    await asyncio.sleep(0)  # the first flush is in flight, holding [0]
    rest = [asyncio.create_task(coalescer.submit(n)) for n in (2, 4, 6)]
    await asyncio.sleep(0)
    store.gate.set()
    await asyncio.gather(first, *rest)
    assert store.calls == [[0], [2, 4, 6]]


async def test_each_caller_gets_its_own_outcome() -> None:
    coalescer = Coalescer(Store().bulk)
    outcomes = await asyncio.gather(
        *(coalescer.submit(n) for n in range(4)), return_exceptions=True
    )
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    assert str(outcomes[3]) == "odd 3"


async def test_a_failing_bulk_call_fails_every_caller_of_that_batch() -> None:
    async def broken(items: Sequence[int]) -> list[BaseException | None]:
        raise ConnectionError("store down")

    coalescer = Coalescer(broken)
    outcomes = await asyncio.gather(
        *(coalescer.submit(n) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    with pytest.raises(ConnectionError):  # and the next call tries again
        await coalescer.submit(9)


async def test_batches_are_capped() -> None:
    store = Store()
    coalescer = Coalescer(store.bulk, max_batch=2)
    await asyncio.gather(*(coalescer.submit(n) for n in (0, 2, 4, 6, 8)))
    assert [len(call) for call in store.calls] == [2, 2, 1]


async def test_a_cancelled_caller_does_not_cancel_the_write() -> None:
    store = Store()
    store.gate.clear()
    coalescer = Coalescer(store.bulk)
    caller = asyncio.create_task(coalescer.submit(0))
    await asyncio.sleep(0)
    caller.cancel()
    store.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await coalescer.submit(2)  # runs after the cancelled caller's batch completed
    assert store.calls == [[0], [2]]
