"""Redis stores: state shared by every replica. Atomic steps are Lua files in `lua/`.

Every store here speaks through a `StoreRedis` (redis_bridge.py: MuxRedis by default):
these are the calls on the request path. Each is a `GuardedStore`: its methods run
through the `StoreBreaker`, so they raise `StoreUnavailable` and nothing else.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from gateway.cache_entry import CachedAnswer, decode_entry, encode_entry
from gateway.stores.breaker import GuardedStore, StoreBreaker
from gateway.stores.rate_limits import Charge, Check, LimitState
from gateway.stores.redis_bridge import StoreRedis, StoreScript
from gateway.stores.strategies import STRATEGIES

CACHE_PREFIX = "gw:cache:"
INFLIGHT_PREFIX = "gw:inflight:"
RATE_LIMIT_PREFIX = "gw:rl:"  # then the strategy's tag and the check's key
REFRESH_BATCH = 1000  # slots per refresh call, to keep each script short


def slots_key(tenant: str) -> str:
    """A tenant's in-flight slots, under its hash tag (see rate_limits.tenant_scope)."""
    return f"{INFLIGHT_PREFIX}{{{tenant}}}"


def lua_script(name: str) -> str:
    """The text of gateway/stores/lua/<name>.lua (package data, read once at start-up)."""
    return files("gateway.stores").joinpath("lua", f"{name}.lua").read_text("utf-8")


def charge_script(strategy: str) -> str:
    """charge.lua with the strategy's `decide` and `commit` in front of it."""
    return lua_script(STRATEGIES[strategy].lua) + lua_script("charge")


class RedisCacheStore(GuardedStore):
    """Cache entries as plain Redis strings with a TTL (Redis evicts them itself), in the
    versioned encoding of `cache_entry` (replicas of different releases may share them)."""

    def __init__(self, client: StoreRedis, breaker: StoreBreaker):
        self.client = client
        self.breaker = breaker

    async def get(self, key: str) -> CachedAnswer | None:
        raw: bytes | None = await self.client.execute("GET", CACHE_PREFIX + key)
        return decode_entry(raw) if raw is not None else None

    async def set(self, key: str, answer: CachedAnswer, ttl: float) -> None:
        await self.client.execute("SET", CACHE_PREFIX + key, encode_entry(answer),
                                  "PX", max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.client.execute("DEL", CACHE_PREFIX + key)


class RedisRateLimitStore(GuardedStore):
    """Every limit of a request and its in-flight slot, in one script call.

    charge.lua decides every limit by the strategy (lua/limit_<strategy>.lua) and checks
    the cap; only if all have room does it charge every limit and take the slot. Slots
    live in a sorted set per tenant scored by expiry; the caller passes the slots its
    process holds to one periodic `refresh`, which keeps them alive however long a
    request runs; if the process dies, they expire after `ttl`.
    """

    def __init__(self, client: StoreRedis, breaker: StoreBreaker, strategy: str, ttl: float):
        self.client = client
        self.breaker = breaker
        self.ttl_ms = int(ttl * 1000)
        self.prefix = RATE_LIMIT_PREFIX + STRATEGIES[strategy].tag + "/"
        self._charge = StoreScript(client, charge_script(strategy))
        self._settle = (StoreScript(client, lua_script("limit_gcra") + lua_script("settle"))
                        if strategy == "gcra" else None)
        self._refresh = StoreScript(client, lua_script("refresh_slots"))
        self._count = StoreScript(client, lua_script("count_slots"))
        self._slot_prefix = os.urandom(6).hex() + ":"
        self._next = 0

    def _new_slot(self) -> str:
        """A slot id unique across replicas (random process prefix, then a counter)."""
        self._next += 1
        return f"{self._slot_prefix}{self._next}"

    async def charge(self, checks: Sequence[Check], cost: int,
                     cap: tuple[str, int] | None = None) -> Charge:
        prefix = self.prefix
        keys = [prefix + check.key for check in checks]
        args: list[Any] = [cost, len(checks)]
        for check in checks:
            args += [check.amount, check.window]
        slot = None
        if cap is not None:
            slot = self._new_slot()
            keys.append(slots_key(cap[0]))
            args += [cap[1], self.ttl_ms, slot]
        verdict, now, *found = await self._charge(keys, args)
        limits = tuple(LimitState(*found[i:i + 5]) for i in range(0, len(found), 5))
        return Charge(now, verdict, limits, slot if verdict == 0 else None)

    async def release(self, key: str, slot: str) -> None:
        # Unanswered: the request's end (its access line, its metrics) does not wait a
        # round trip for it; a lost ZREM leaves the slot to expire (`ttl`), as a dead
        # replica's would.
        await self.client.execute_unanswered("ZREM", slots_key(key), slot)

    async def settle(self, checks: Sequence[Check], delta: int) -> None:
        if self._settle is None:
            raise NotImplementedError("settle needs the gcra strategy")
        if not delta:
            return
        args: list[Any] = [delta]
        for check in checks:
            args += [check.amount, check.window]
        await self._settle([self.prefix + check.key for check in checks], args)

    async def count(self, key: str) -> int:
        return int(await self._count([slots_key(key)], []))

    async def refresh(self, slots: Sequence[tuple[str, str]]) -> None:
        # One call per tenant (one key each: on a cluster, keys of several tenants may
        # live on several nodes), all in flight at once.
        by_key: dict[str, list[str]] = {}
        for slot, key in slots:
            by_key.setdefault(key, []).append(slot)
        calls = []
        for key, ids in by_key.items():
            for i in range(0, len(ids), REFRESH_BATCH):
                batch = ids[i:i + REFRESH_BATCH]
                calls.append(self._refresh([slots_key(key)] * len(batch),
                                           [self.ttl_ms, *batch]))
        await asyncio.gather(*calls)
