"""The upstream pool's in-use cap: never more than its size taken, waiters served in
order, and no slot lost to a waiter cancelled before or after it was handed one."""

from __future__ import annotations

import asyncio

from gateway.connection_cap import ConnectionCap


def test_at_most_size_are_taken_and_waiters_go_first_come_first_served() -> None:
    async def main() -> tuple[list[int], int]:
        cap = ConnectionCap(2)
        assert cap.take() and cap.take() and not cap.take()
        order: list[int] = []

        async def waiter(i: int) -> None:
            await cap.wait()
            order.append(i)

        tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
        await asyncio.sleep(0)
        assert not cap.take()  # queued waiters come before a newcomer
        for _ in range(3):
            cap.give()
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        cap.give()
        cap.give()
        return order, cap.free

    order, free = asyncio.run(main())
    assert order == [0, 1, 2] and free == 2


def test_cancelled_waiters_lose_no_slot() -> None:
    async def main() -> int:
        cap = ConnectionCap(1)
        assert cap.take()
        before = asyncio.create_task(cap.wait())   # cancelled while waiting
        handed = asyncio.create_task(cap.wait())   # handed the slot, then cancelled
        last = asyncio.create_task(cap.wait())
        await asyncio.sleep(0)
        before.cancel()
        await asyncio.sleep(0)
        cap.give()            # goes to `handed` (the first not-cancelled waiter)...
        handed.cancel()       # ...which is cancelled before it runs: passes it on
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert last.done() and not last.cancelled()
        cap.give()            # `last` is done with it
        return cap.free

    assert asyncio.run(main()) == 1
