"""Shared state behind small protocols, in memory (one machine) or on Redis (replicas).

`connect_redis(url)` and `connect_mux(url)` are the one place Redis clients are
configured: short timeouts so a dead Redis costs milliseconds, not seconds. The stores
here (cache, in-flight slots, the one-call rate limits) speak through `MuxRedis`, one
pipelined connection; redis-py, with a pool sized for the gateway's concurrency, serves
the `limits` library (the strategies other than moving window) and the key store. Redis
errors are mapped to gateway errors by `StoreBreaker.call`, never above.

`open_stores(settings)` picks the implementations: memory when `GATEWAY_REDIS_URL` is
unset, Redis otherwise. It does no I/O (both Redis clients connect on first use); the
app's lifespan runs `Stores.refresh_forever` and `Stores.aclose`.
On Redis with the moving-window strategy, `rate_limits` charges a request's limits and
in-flight slot in one script call; elsewhere the policy composes `limiter` and `inflight`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis
from redis.maint_notifications import MaintNotificationsConfig

from gateway.stores.redis_mux import MuxRedis

if TYPE_CHECKING:
    from limits.aio.strategies import RateLimiter

    from gateway.cache_entry import CachedAnswer
    from gateway.settings import Settings
    from gateway.stores.breaker import StoreBreaker
    from gateway.stores.redis import RedisRateLimitStore

# Fail fast: the stores' own circuit breakers decide what an outage means for requests.
REDIS_SOCKET_TIMEOUT = 0.25
REDIS_CONNECT_TIMEOUT = 0.25
REDIS_MAX_CONNECTIONS = 256


def connect_redis(url: str, timeout: float | None = None) -> aioredis.Redis:
    """An asyncio Redis client for `url` (no I/O until first use)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout or REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=timeout or REDIS_CONNECT_TIMEOUT,
        max_connections=REDIS_MAX_CONNECTIONS,
        health_check_interval=0,
        decode_responses=False,
        # redis-py 8.1 skips its check of pooled connections on checkout when maintenance
        # notifications are on (the RESP3 default), so after a Redis restart each idle
        # connection fails one command (tests/stores/test_contract.py). Off, a closed one
        # is replaced.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )


def connect_mux(url: str, timeout: float | None = None) -> MuxRedis:
    """The stores' pipelined connection to `url` (no I/O until first use)."""
    return MuxRedis(url, timeout or REDIS_SOCKET_TIMEOUT, timeout or REDIS_CONNECT_TIMEOUT)


class CacheStore(Protocol):
    """Response cache entries: a stored answer under a key, gone after its TTL."""

    async def get(self, key: str) -> CachedAnswer | None: ...

    async def set(self, key: str, answer: CachedAnswer, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...


class InFlightStore(Protocol):
    """Counts requests in progress per key (tenant) against a cap.

    `acquire` returns a slot id, or None when `limit` slots are taken; `release` frees it.
    A slot not released (crashed replica) expires `ttl` seconds after its last refresh;
    `refresh` extends the live slots this process holds, (slot, key) pairs, periodically.
    """

    async def acquire(self, key: str, limit: int) -> str | None: ...

    async def release(self, key: str, slot: str) -> None: ...

    async def count(self, key: str) -> int: ...

    async def refresh(self, slots: Sequence[tuple[str, str]]) -> None: ...


@dataclass(slots=True)
class Stores:
    """Every store the policies use, with the breaker guarding them (one per process)."""

    kind: str  # "memory" | "redis"
    limiter: RateLimiter
    inflight: InFlightStore
    cache: CacheStore
    breaker: StoreBreaker
    redis: aioredis.Redis | None  # redis-py: `limits`' storage, the key store
    slot_ttl: float
    mux: MuxRedis | None = None  # the stores' own calls
    rate_limits: RedisRateLimitStore | None = None  # Redis + moving window: one round trip
    live_slots: dict[str, str] = field(default_factory=dict)  # this process's: slot -> key

    async def refresh_forever(self) -> None:
        """Keep this process's in-flight slots alive (lifespan task)."""
        import asyncio

        from gateway.errors import StoreUnavailable

        while True:
            await asyncio.sleep(self.slot_ttl / 3)
            try:
                if self.live_slots:
                    await self.breaker.call(
                        partial(self.inflight.refresh, list(self.live_slots.items())))
            except StoreUnavailable:
                pass  # slots expire on their own; acquire again after the outage

    async def aclose(self) -> None:
        await self.breaker.aclose()
        if self.mux is not None:
            await self.mux.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def open_stores(settings: Settings) -> Stores:
    """Memory stores, or Redis ones sharing one client and one breaker (no I/O here)."""
    from limits.storage import storage_from_string

    from gateway.pipeline.rate_limit import STRATEGIES
    from gateway.stores.breaker import StoreBreaker

    strategy = STRATEGIES[settings.rate_limit_strategy]
    if settings.redis_url is None:
        from gateway.stores.memory import (
            MemoryCacheStore,
            MemoryInFlightStore,
            MemoryLimitsStorage,
        )

        return Stores(
            kind="memory",
            limiter=strategy(MemoryLimitsStorage()),
            inflight=MemoryInFlightStore(),
            cache=MemoryCacheStore(settings.cache_max_bytes),
            breaker=StoreBreaker("memory", settings.store_breaker_failures,
                                 settings.store_breaker_cooldown, max_in_flight=None),
            redis=None,
            slot_ttl=settings.inflight_slot_ttl,
        )
    from gateway.stores.redis import (
        RATE_LIMIT_PREFIX,
        RedisCacheStore,
        RedisInFlightStore,
        RedisRateLimitStore,
    )

    # The timeout bounds Redis *and* this process' event-loop lag: under a burst, a reply
    # can sit unread for a few hundred ms, which must not read as an outage.
    client = connect_redis(settings.redis_url, settings.store_timeout)
    mux = connect_mux(settings.redis_url, settings.store_timeout)
    url = settings.redis_url
    uri = "async+" + url if url.startswith("redis") else "async+redis+" + url  # unix://
    storage = storage_from_string(
        uri, implementation="redispy",
        connection_pool=client.connection_pool,  # type: ignore[arg-type]
        wrap_exceptions=True,
        key_prefix=RATE_LIMIT_PREFIX,
    )
    inflight = RedisInFlightStore(mux, settings.inflight_slot_ttl)
    moving = settings.rate_limit_strategy == "moving-window"
    # With the other strategies `limits` calls through redis-py's pool, which raises
    # instead of queueing when full: the breaker then bounds every store call. With the
    # moving window no store call uses that pool (MuxRedis has none): nothing to bound.
    bound = None if moving else min(settings.store_max_in_flight, REDIS_MAX_CONNECTIONS - 16)
    return Stores(
        kind="redis",
        limiter=strategy(storage),
        inflight=inflight,
        cache=RedisCacheStore(mux),
        breaker=StoreBreaker("redis", settings.store_breaker_failures,
                             settings.store_breaker_cooldown, bound, probe=mux.ping),
        redis=client,
        slot_ttl=settings.inflight_slot_ttl,
        mux=mux,
        rate_limits=RedisRateLimitStore(mux, inflight) if moving else None,
    )
