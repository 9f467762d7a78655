"""In-process stores: the one-machine default. Exact within one process, shared by none.

Plain dicts touched only from the event loop, so no locks are needed: every method runs
to completion without awaiting. They cannot be unavailable, so they have no breaker.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from gateway.cache_entry import CachedAnswer
from gateway.stores.rate_limits import Charge, Check, LimitState
from gateway.stores.strategies import STRATEGIES, gcra_settle

# A named tuple's own constructor is a Python function; tuple's is not (two a charge).
_tuple_new = tuple.__new__


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


def _wall_micros() -> int:
    return time.time_ns() // 1000


class MemoryRateLimitStore:
    """Rate limits and in-flight slots of one process, decided by one strategy.

    The clock is the wall clock in µs, as Redis TIME is on Redis. State that no longer
    matters (a full bucket, an expired window) reads as absent; it is dropped by a
    sweep at most once per `SWEEP_INTERVAL`, so memory follows the tenants active in
    the last window, not every tenant ever seen. Slots never expire: a crashed process
    takes them along.
    """

    SWEEP_INTERVAL = 10 * 1_000_000  # µs

    def __init__(self, strategy: str, clock: Callable[[], int] = _wall_micros):
        self.strategy = STRATEGIES[strategy]
        self.clock = clock
        self._state: dict[str, tuple[int, Any]] = {}  # key -> (expires at µs, state)
        self._next_sweep = 0
        self._slots: dict[str, set[str]] = {}
        self._ids = itertools.count()

    def __len__(self) -> int:
        return len(self._state)

    async def charge(self, checks: Sequence[Check], cost: int,
                     cap: tuple[str, int] | None = None) -> Charge:
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        decide, table = self.strategy.decide, self._state
        states: list[Any] = []
        found: list[LimitState] = []
        refused = 0
        for i, (amount, window, key) in enumerate(checks, 1):
            held = table.get(key)
            state = held[1] if held is not None and held[0] > now else None
            states.append(state)
            d = decide(state, amount, window, cost, now)
            found.append(_tuple_new(LimitState, d[1:]))  # the Decision minus ok
            if not d[0] and not refused:
                refused = i
        limits = tuple(found)
        slots = self._slots.get(cap[0]) if cap is not None else None
        if cap is not None and slots is not None and len(slots) >= cap[1]:
            return _tuple_new(Charge, (now, -1, limits, None))
        if refused:
            return _tuple_new(Charge, (now, refused, limits, None))
        if cost:
            commit = self.strategy.commit
            for (amount, window, key), state in zip(checks, states, strict=True):
                new, expires = commit(state, amount, window, cost, now)
                table[key] = (expires, new)
        slot = None
        if cap is not None:
            slot = str(next(self._ids))
            self._slots.setdefault(cap[0], set()).add(slot)
        return _tuple_new(Charge, (now, 0, limits, slot))

    async def settle(self, checks: Sequence[Check], delta: int) -> None:
        if self.strategy is not STRATEGIES["gcra"]:
            raise NotImplementedError("settle needs the gcra strategy")
        if not delta:
            return
        now = self.clock()
        table = self._state
        for amount, window, key in checks:
            held = table.get(key)
            tat = held[1] if held is not None and held[0] > now else None
            new = gcra_settle(tat, amount, window, delta, now)
            if new is None:
                table.pop(key, None)
            else:
                table[key] = (new, new)

    def _sweep(self, now: int) -> None:
        self._next_sweep = now + self.SWEEP_INTERVAL
        table = self._state
        for key in [k for k, (expires, _) in table.items() if expires <= now]:
            del table[key]

    async def release(self, key: str, slot: str) -> None:
        self.release_now(key, slot)

    def release_now(self, key: str, slot: str) -> None:
        """`release` without a coroutine: a slot of this process never waits to be freed
        (the rate-limit policy's cleanup calls this directly, see `_run_cleanups`)."""
        slots = self._slots.get(key)
        if slots is not None:
            slots.discard(slot)
            if not slots:
                del self._slots[key]

    async def count(self, key: str) -> int:
        return len(self._slots.get(key, ()))

    async def refresh(self, slots: Sequence[tuple[str, str]]) -> None:
        return None  # memory slots live exactly as long as their process
