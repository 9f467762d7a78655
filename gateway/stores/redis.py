"""Redis stores: state shared by every replica. Atomic steps are Lua files in `lua/`.

The callers wrap each call in the `StoreBreaker`, which maps Redis errors to
`StoreUnavailable`; nothing here catches them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import redis.asyncio as aioredis

CACHE_PREFIX = "gw:cache:"
INFLIGHT_PREFIX = "gw:inflight:"
REFRESH_BATCH = 1000  # slots per refresh call, to keep each script short


def lua_script(name: str) -> str:
    """The text of gateway/stores/lua/<name>.lua (package data, read once at start-up)."""
    return files("gateway.stores").joinpath("lua", f"{name}.lua").read_text("utf-8")


class RedisCacheStore:
    """Cache entries as plain Redis strings with a TTL (Redis evicts them itself)."""

    def __init__(self, client: aioredis.Redis):
        self.client = client

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self.client.get(CACHE_PREFIX + key)  # type: ignore[assignment]
        return value  # decode_responses=False: always bytes

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self.client.set(CACHE_PREFIX + key, value, px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.client.delete(CACHE_PREFIX + key)


class RedisInFlightStore:
    """Per-key in-flight slots in a sorted set scored by expiry, shared by all replicas.

    The caller passes the slots its process holds to one periodic `refresh`, which keeps
    them alive however long a request runs; if the process dies, they expire after `ttl`.
    """

    def __init__(self, client: aioredis.Redis, ttl: float):
        self.client = client
        self.ttl_ms = int(ttl * 1000)
        # Registered once: redis-py sends EVALSHA and loads the script on NOSCRIPT.
        self._acquire: Any = client.register_script(lua_script("acquire_slot"))
        self._refresh: Any = client.register_script(lua_script("refresh_slots"))
        self._count: Any = client.register_script(lua_script("count_slots"))
        self._prefix = os.urandom(6).hex() + ":"
        self._next = 0

    async def acquire(self, key: str, limit: int) -> str | None:
        self._next += 1
        slot = f"{self._prefix}{self._next}"
        taken = await self._acquire(keys=[INFLIGHT_PREFIX + key], args=[limit, self.ttl_ms, slot])
        return slot if taken else None

    async def release(self, key: str, slot: str) -> None:
        await self.client.zrem(INFLIGHT_PREFIX + key, slot)

    async def count(self, key: str) -> int:
        return int(await self._count(keys=[INFLIGHT_PREFIX + key]))

    async def refresh(self, slots: Sequence[tuple[str, str]]) -> None:
        for i in range(0, len(slots), REFRESH_BATCH):
            batch = slots[i:i + REFRESH_BATCH]
            await self._refresh(keys=[INFLIGHT_PREFIX + k for _, k in batch],
                                args=[self.ttl_ms, *(s for s, _ in batch)])
