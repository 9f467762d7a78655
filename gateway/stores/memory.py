"""In-process stores: the one-machine default. Exact within one process, shared by none.

The cache and in-flight stores are plain dicts touched only from the event loop, so no
locks are needed: every method runs to completion without awaiting. The rate limits
live in `limits`' own MemoryStorage, with its expiry sweep throttled (see below).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from limits.aio.storage import MemoryStorage

from gateway.cache_entry import CachedAnswer


class MemoryCacheStore:
    """An LRU bounded in bytes (keys + `CachedAnswer.size`), with a TTL per entry.

    It keeps the answers themselves: a hit decodes nothing, and every hit of an entry
    shares the one immutable object.

    Expired entries are dropped when read or when they reach the cold end; an entry
    larger than the whole budget is never stored.
    """

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic):
        self.max_bytes = max_bytes
        self.clock = clock
        self.size = 0
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> CachedAnswer | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, answer = found
        if expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return answer

    async def set(self, key: str, answer: CachedAnswer, ttl: float) -> None:
        if key in self._entries:  # replaced, even by an answer too large to keep
            self._drop(key)
        cost = len(key) + answer.size
        if cost > self.max_bytes:
            return
        self._entries[key] = (self.clock() + ttl, answer)
        self.size += cost
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def delete(self, key: str) -> None:
        if key in self._entries:
            self._drop(key)

    def _drop(self, key: str) -> None:
        _, answer = self._entries.pop(key)
        self.size -= len(key) + answer.size


class MemoryInFlightStore:
    """In-flight counts per key. Slots never expire: a crashed process takes them along."""

    def __init__(self) -> None:
        self._slots: dict[str, set[str]] = {}
        self._ids = itertools.count()

    async def acquire(self, key: str, limit: int) -> str | None:
        slots = self._slots.setdefault(key, set())
        if len(slots) >= limit:
            return None
        slot = str(next(self._ids))
        slots.add(slot)
        return slot

    async def release(self, key: str, slot: str) -> None:
        slots = self._slots.get(key)
        if slots is not None:
            slots.discard(slot)
            if not slots:
                del self._slots[key]

    async def count(self, key: str) -> int:
        return len(self._slots.get(key, ()))

    async def refresh(self, slots: Sequence[tuple[str, str]]) -> None:
        return None  # memory slots live exactly as long as their process


class MemoryLimitsStorage(MemoryStorage):
    """`limits`' async MemoryStorage, sweeping expired entries at most once a second.

    limits 5.8 starts its sweep (`__expire_events`) on nearly every hit, and the sweep
    holds each key's lock across an `asyncio.to_thread` hop, so at concurrency 1 every
    request waited on a thread. The sweep is only garbage collection (hits and window
    reads compare timestamps themselves), so running it once per `SWEEP_INTERVAL`
    changes no decision and keeps at most that long's expired entries in memory.
    The hook is limits' private `__schedule_expiry`; tests/stores/test_memory_limits.py
    fails if a limits release renames it.
    """

    SWEEP_INTERVAL = 1.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self._next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = self.clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.SWEEP_INTERVAL
        await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]  # mangled
