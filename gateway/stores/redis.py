"""Redis stores: state shared by every replica. Atomic steps are Lua files in `lua/`.

`RedisRateLimitStore.charge` is the one-round-trip path of the moving-window limits: it
writes the `limits` library's own keys and layout, so `limits` reads the same counters.

Every store here speaks through `MuxRedis` (one pipelined connection; see redis_mux.py):
these are the calls on the request path. The callers wrap each call in the
`StoreBreaker`, which maps Redis errors to `StoreUnavailable`; nothing here catches them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from limits import RateLimitItem
from limits.util import WindowStats

from gateway.cache_entry import CachedAnswer, decode_entry, encode_entry
from gateway.stores.redis_mux import MuxRedis, MuxScript

CACHE_PREFIX = "gw:cache:"
INFLIGHT_PREFIX = "gw:inflight:"
RATE_LIMIT_PREFIX = "gw:rl"  # limits' key_prefix: its keys are "gw:rl:" + item.key_for(...)
REFRESH_BATCH = 1000  # slots per refresh call, to keep each script short


def lua_script(name: str) -> str:
    """The text of gateway/stores/lua/<name>.lua (package data, read once at start-up)."""
    return files("gateway.stores").joinpath("lua", f"{name}.lua").read_text("utf-8")


class RedisCacheStore:
    """Cache entries as plain Redis strings with a TTL (Redis evicts them itself), in the
    versioned encoding of `cache_entry` (replicas of different releases may share them)."""

    def __init__(self, client: MuxRedis):
        self.client = client

    async def get(self, key: str) -> CachedAnswer | None:
        raw: bytes | None = await self.client.execute("GET", CACHE_PREFIX + key)
        return decode_entry(raw) if raw is not None else None

    async def set(self, key: str, answer: CachedAnswer, ttl: float) -> None:
        await self.client.execute("SET", CACHE_PREFIX + key, encode_entry(answer),
                                  "PX", max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.client.execute("DEL", CACHE_PREFIX + key)


class RedisInFlightStore:
    """Per-key in-flight slots in a sorted set scored by expiry, shared by all replicas.

    The caller passes the slots its process holds to one periodic `refresh`, which keeps
    them alive however long a request runs; if the process dies, they expire after `ttl`.
    """

    def __init__(self, client: MuxRedis, ttl: float):
        self.client = client
        self.ttl_ms = int(ttl * 1000)
        self._acquire = MuxScript(client, lua_script("acquire_slot"))
        self._refresh = MuxScript(client, lua_script("refresh_slots"))
        self._count = MuxScript(client, lua_script("count_slots"))
        self._prefix = os.urandom(6).hex() + ":"
        self._next = 0

    def new_slot(self) -> str:
        """A slot id unique across replicas (random process prefix, then a counter)."""
        self._next += 1
        return f"{self._prefix}{self._next}"

    async def acquire(self, key: str, limit: int) -> str | None:
        slot = self.new_slot()
        taken = await self._acquire([INFLIGHT_PREFIX + key], [limit, self.ttl_ms, slot])
        return slot if taken else None

    async def release(self, key: str, slot: str) -> None:
        await self.client.execute("ZREM", INFLIGHT_PREFIX + key, slot)

    async def count(self, key: str) -> int:
        return int(await self._count([INFLIGHT_PREFIX + key], []))

    async def refresh(self, slots: Sequence[tuple[str, str]]) -> None:
        for i in range(0, len(slots), REFRESH_BATCH):
            batch = slots[i:i + REFRESH_BATCH]
            await self._refresh([INFLIGHT_PREFIX + k for _, k in batch],
                                [self.ttl_ms, *(s for s, _ in batch)])


@dataclass(frozen=True, slots=True)
class Charge:
    """What one `RedisRateLimitStore.charge` found, and whether it charged."""

    now: float  # Redis time: the clock the windows are stamped with
    stats: list[WindowStats]  # per limit, before this request (as `get_window_stats`)
    refused: int | None  # index of the first limit without room for the cost
    cap_full: bool  # the in-flight cap refused
    slot: str | None  # the slot taken; None unless admitted with a cap

    @property
    def admitted(self) -> bool:
        return self.refused is None and not self.cap_full


class RedisRateLimitStore:
    """Moving-window limits and the in-flight cap of one request, in one script call.

    charge_limits.lua checks every limit and the cap, and only if all have room charges
    every limit and takes the slot. The windows are `limits`' own (keys, list layout), so
    its MovingWindowRateLimiter over the same Redis reads what this store wrote.
    """

    def __init__(self, client: MuxRedis, inflight: RedisInFlightStore):
        self.inflight = inflight
        self._charge = MuxScript(client, lua_script("charge_limits"))

    async def charge(self, checks: Sequence[tuple[RateLimitItem, tuple[str, ...]]],
                     cost: int, cap: tuple[str, int] | None = None) -> Charge:
        """Charge `cost` to every (item, identifiers) and take a slot of `cap` (key,
        limit), or nothing at all."""
        keys = [f"{RATE_LIMIT_PREFIX}:{item.key_for(*ids)}" for item, ids in checks]
        args: list[Any] = [cost, len(checks)]
        for item, _ in checks:
            args += [item.amount, item.get_expiry()]
        slot = None
        if cap is not None:
            slot = self.inflight.new_slot()
            keys.append(INFLIGHT_PREFIX + cap[0])
            args += [cap[1], self.inflight.ttl_ms, slot]
        verdict, seconds, micros, *windows = (await self._charge(keys, args)).split()
        now = int(seconds) + int(micros) / 1_000_000
        stats = [
            WindowStats((float(oldest) if int(count) else now) + item.get_expiry(),
                        item.amount - int(count))
            for (item, _), count, oldest in zip(checks, windows[::2], windows[1::2],
                                                strict=True)
        ]
        code = int(verdict)
        return Charge(now, stats, refused=code - 1 if code > 0 else None,
                      cap_full=code < 0, slot=slot if code == 0 else None)
