"""The semantic cache's nearest-neighbour index: which cached answer a vector is near.

Entries live in partitions (a tenant's requests to one route that are equal except for
the embedded text: `semantic.partition_key`); each entry is a unit vector, the exact
cache key of the answer it stands for, and an expiry. `search(partition, vector)` gives
the most similar live entry (cosine, a dot product of unit vectors) and its similarity;
the caller checks the threshold and reads the answer under that key from the CacheStore,
so an answer evicted there is a miss here too.

`MemoryVectorIndex` keeps a float32 matrix per partition. `RedisVectorIndex` keeps each
partition as one Redis hash (field: cache key; value: expiry in µs, then the float32
vector) and scores it in the gateway with numpy: the fallback for a Redis without a
vector index (Redis 7 without the search module, as shipped by Debian 12); a partition is
capped at `max_entries` (oldest dropped), so a lookup reads at most that many vectors
(256 x 384 float32 = 393 KiB by default). Both raise only StoreUnavailable (Redis: via
the breaker).
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.stores.breaker import GuardedStore, StoreBreaker
from gateway.stores.redis_bridge import StoreRedis

Vector = npt.NDArray[np.float32]
VECTORS_PREFIX = "gw:semcache:"
_EXPIRY = struct.Struct("<q")  # µs since the epoch, before the vector bytes


class VectorIndex(Protocol):
    """Nearest cached answer by embedding, per partition."""

    async def search(self, partition: str, vector: Vector) -> tuple[float, str] | None: ...

    async def add(self, partition: str, vector: Vector, key: str, ttl: float,
                  max_entries: int) -> None: ...


def _best(matrix: Vector, keys: list[str], vector: Vector) -> tuple[float, str] | None:
    if not keys:
        return None
    scores = matrix @ vector
    i = int(np.argmax(scores))
    return float(scores[i]), keys[i]


class MemoryVectorIndex:
    """Per-partition dicts of key -> (expiry, vector), oldest first; partitions LRU-bounded."""

    def __init__(self, max_partitions: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.max_partitions = max_partitions
        self.clock = clock
        self._parts: OrderedDict[str, OrderedDict[str, tuple[float, Vector]]] = OrderedDict()

    async def search(self, partition: str, vector: Vector) -> tuple[float, str] | None:
        entries = self._parts.get(partition)
        if not entries:
            return None
        now = self.clock()
        for key in [k for k, (expires, _) in entries.items() if expires <= now]:
            del entries[key]
        self._parts.move_to_end(partition)
        if not entries:
            return None
        return _best(np.stack([v for _, v in entries.values()]), list(entries), vector)

    async def add(self, partition: str, vector: Vector, key: str, ttl: float,
                  max_entries: int) -> None:
        entries = self._parts.setdefault(partition, OrderedDict())
        self._parts.move_to_end(partition)
        entries.pop(key, None)
        entries[key] = (self.clock() + ttl, np.asarray(vector, dtype=np.float32))
        while len(entries) > max_entries:
            entries.popitem(last=False)
        while len(self._parts) > self.max_partitions:
            self._parts.popitem(last=False)


class RedisVectorIndex(GuardedStore):
    """Partitions as Redis hashes, scored here (see the module docstring)."""

    def __init__(self, client: StoreRedis, breaker: StoreBreaker,
                 clock: Callable[[], float] = time.time):
        self.client = client
        self.breaker = breaker
        self.clock = clock

    async def search(self, partition: str, vector: Vector) -> tuple[float, str] | None:
        raw = await self.client.execute("HGETALL", VECTORS_PREFIX + partition)
        if not raw:
            return None
        now_us = int(self.clock() * 1e6)
        pairs = dict(zip(raw[::2], raw[1::2], strict=True)) if isinstance(raw, list) else raw
        keys, rows, stale = [], [], []
        for field, value in pairs.items():
            (expires,) = _EXPIRY.unpack_from(value)
            if expires <= now_us or len(value) != _EXPIRY.size + 4 * len(vector):
                stale.append(field)
                continue
            keys.append(field.decode())
            rows.append(np.frombuffer(value, dtype="<f4", offset=_EXPIRY.size))
        if stale:
            await self.client.execute("HDEL", VECTORS_PREFIX + partition, *stale)
        return _best(np.stack(rows), keys, vector) if rows else None

    async def add(self, partition: str, vector: Vector, key: str, ttl: float,
                  max_entries: int) -> None:
        name = VECTORS_PREFIX + partition
        # In µs: the cap drops the soonest to expire, i.e. (one TTL per route) the oldest;
        # two entries added within one ms must still be told apart.
        expires = int((self.clock() + ttl) * 1e6)
        value = _EXPIRY.pack(expires) + np.asarray(vector, dtype="<f4").tobytes()
        await self.client.execute("HSET", name, key, value)
        # The hash lives as long as its newest entry could.
        await self.client.execute("PEXPIRE", name, max(1, int(ttl * 1000)), "GT")
        await self.client.execute("PEXPIRE", name, max(1, int(ttl * 1000)), "NX")
        count = await self.client.execute("HLEN", name)
        if int(count) > max_entries:
            raw = await self.client.execute("HGETALL", name)
            pairs = dict(zip(raw[::2], raw[1::2], strict=True)) if isinstance(raw, list) \
                else raw
            by_age = sorted(pairs, key=lambda f: _EXPIRY.unpack_from(pairs[f])[0])
            await self.client.execute("HDEL", name, *by_age[:int(count) - max_entries])
