"""The upstream pool's cap on connections in use: a counter, and waiters only when full.

`asyncio.Semaphore` would do, but its `acquire` is a coroutine that, on Python 3.11,
also builds a generator over its waiters on every call, waiters or not; every proxied
request takes and gives back one slot, so here the free path is one comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class ConnectionCap:
    """`take()` a slot at once if one is free and nobody queues before you, else
    `await wait()` for one (first come, first served); `give()` it back when done."""

    def __init__(self, size: int):
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def wait(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut  # resolved by give(): the slot is handed over, `free` untouched
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.give()  # handed a slot, then cancelled before using it: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def give(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1
