"""Shared state behind small protocols, in memory (one machine) or on Redis (replicas).

`connect_redis(url)` and `connect_mux(url)` are the one place Redis clients are
configured: short timeouts so a dead Redis costs milliseconds, not seconds. The URL
names one Redis, a Redis Cluster or a Sentinel set (redis_url.py, redis_ha.py): every
user of these two functions gets the right client for it. The stores
here (cache, rate limits, in-flight slots and the job queue) speak through `MuxRedis`, one pipelined
connection, or redis-py by GATEWAY_STORE_REDIS_CLIENT (redis_bridge.py); redis-py serves
the key store. Redis errors become `StoreUnavailable`
inside the stores (`GuardedStore`, breaker.py), never above.

`open_stores(settings)` picks the implementations: memory when `GATEWAY_REDIS_URL` is
unset, Redis otherwise, with the rate-limit strategy of `GATEWAY_RATE_LIMIT_STRATEGY`
(strategies.py). It does no I/O (both Redis clients connect on first use); the app's
lifespan runs `Stores.refresh_forever` and `Stores.aclose`. Nothing here imports the
pipeline: the policies use the stores, never the other way round.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aioredis
from redis.maint_notifications import MaintNotificationsConfig

from gateway.errors import StoreUnavailable
from gateway.stores.breaker import StoreBreaker
from gateway.stores.jobs import JobBackend
from gateway.stores.rate_limits import RateLimitStore
from gateway.stores.redis_bridge import RedisPyBridge, StoreRedis
from gateway.stores.redis_cluster import MuxCluster
from gateway.stores.redis_ha import RedisClient, redis_py_client, sentinel_locator
from gateway.stores.redis_mux import MuxRedis
from gateway.stores.redis_url import redis_target
from gateway.stores.vectors import MemoryVectorIndex, RedisVectorIndex, VectorIndex

if TYPE_CHECKING:
    from gateway.cache_entry import CachedAnswer
    from gateway.settings import Settings

# Fail fast: the stores' own circuit breakers decide what an outage means for requests.
REDIS_SOCKET_TIMEOUT = 0.25
REDIS_CONNECT_TIMEOUT = 0.25
REDIS_MAX_CONNECTIONS = 256


def connect_redis(url: str, timeout: float | None = None) -> RedisClient:
    """An asyncio redis-py client for `url`, whichever kind it names: one server, a
    Redis Cluster or Sentinel (redis_ha.py); no I/O until first use."""
    target = redis_target(url)
    if target.kind != "single":
        return redis_py_client(target, timeout or REDIS_SOCKET_TIMEOUT, REDIS_MAX_CONNECTIONS)
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


def connect_mux(url: str, timeout: float | None = None) -> MuxRedis | MuxCluster:
    """The stores' pipelined client of `url`: one connection, or one per cluster primary
    (redis_cluster.py); no I/O until first use."""
    target = redis_target(url)
    seconds, connect = timeout or REDIS_SOCKET_TIMEOUT, timeout or REDIS_CONNECT_TIMEOUT
    if target.kind == "cluster":
        return MuxCluster(target, seconds, connect)
    if target.kind == "sentinel":
        return MuxRedis(target.node_url, seconds, connect,
                        locate=sentinel_locator(target, connect))
    return MuxRedis(url, seconds, connect)


def connect_store_client(url: str, timeout: float | None = None, kind: str = "mux"
                         ) -> StoreRedis:
    """The stores' client of `url`, by GATEWAY_STORE_REDIS_CLIENT (no I/O until first use)."""
    if kind == "redis-py":
        if redis_target(url).kind != "single":
            raise ValueError("GATEWAY_STORE_REDIS_CLIENT=redis-py serves one Redis only; "
                             "a cluster or Sentinel URL takes the default client (mux)")
        return RedisPyBridge(url, timeout or REDIS_SOCKET_TIMEOUT,
                             timeout or REDIS_CONNECT_TIMEOUT)
    return connect_mux(url, timeout)


class CacheStore(Protocol):
    """Response cache entries: a stored answer under a key, gone after its TTL."""

    async def get(self, key: str) -> CachedAnswer | None: ...

    async def set(self, key: str, answer: CachedAnswer, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...


@dataclass(slots=True)
class Stores:
    """Every store the policies use, with the breaker guarding them (one per process)."""

    kind: str  # "memory" | "redis"
    rate_limits: RateLimitStore
    cache: CacheStore
    breaker: StoreBreaker  # the Redis stores' (never opens in memory)
    redis: RedisClient | None  # redis-py: the key store's client
    slot_ttl: float
    jobs: JobBackend  # the job queue, its records and Idempotency-Keys (stores/jobs.py)
    # LLM token and budget limits: always gcra, reserved then settled (docs/llm.md).
    tokens: RateLimitStore | None = None
    vectors: VectorIndex = field(default_factory=lambda: MemoryVectorIndex())
    mux: StoreRedis | None = None  # the stores' own calls
    blocking: RedisClient | None = None  # the job queue's XREADGROUP BLOCK
    live_slots: dict[str, str] = field(default_factory=dict)  # this process's: slot -> key

    async def refresh_forever(self) -> None:
        """Keep this process's in-flight slots alive (lifespan task)."""
        while True:
            await asyncio.sleep(self.slot_ttl / 3)
            try:
                if self.live_slots:
                    await self.rate_limits.refresh(list(self.live_slots.items()))
            except StoreUnavailable:
                pass  # slots expire on their own; acquire again after the outage

    async def aclose(self) -> None:
        await self.breaker.aclose()
        if self.mux is not None:
            await self.mux.aclose()
        if self.blocking is not None:
            await self.blocking.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def open_stores(settings: Settings) -> Stores:
    """Memory stores, or Redis ones sharing one client and one breaker (no I/O here)."""
    strategy = settings.rate_limit_strategy
    if settings.redis_url is None:
        from gateway.stores.jobs_memory import MemoryJobStore
        from gateway.stores.memory import MemoryCacheStore, MemoryRateLimitStore

        return Stores(
            kind="memory",
            rate_limits=MemoryRateLimitStore(strategy),
            cache=MemoryCacheStore(settings.cache_max_bytes),
            breaker=StoreBreaker("memory", settings.store_breaker_failures,
                                 settings.store_breaker_cooldown, max_in_flight=None),
            redis=None,
            slot_ttl=settings.inflight_slot_ttl,
            tokens=MemoryRateLimitStore("gcra"),
            jobs=MemoryJobStore(settings.jobs_list_keep),
        )
    from gateway.stores.jobs_redis import BLOCK_MAX, RedisJobStore
    from gateway.stores.redis import RedisCacheStore, RedisRateLimitStore

    # The timeout bounds Redis *and* this process' event-loop lag: under a burst, a reply
    # can sit unread for a few hundred ms, which must not read as an outage.
    mux = connect_store_client(settings.redis_url, settings.store_timeout,
                               settings.store_redis_client)
    # Every store call goes through MuxRedis, which queues on one connection: nothing to
    # bound (redis-py's pool, which fails when full, serves only the key store).
    breaker = StoreBreaker("redis", settings.store_breaker_failures,
                           settings.store_breaker_cooldown, None, probe=mux.ping)
    blocking = connect_redis(settings.redis_url, BLOCK_MAX + settings.store_timeout + 1)
    return Stores(
        kind="redis",
        rate_limits=RedisRateLimitStore(mux, breaker, strategy, settings.inflight_slot_ttl),
        cache=RedisCacheStore(mux, breaker),
        vectors=RedisVectorIndex(mux, breaker),
        breaker=breaker,
        redis=connect_redis(settings.redis_url, settings.store_timeout),
        slot_ttl=settings.inflight_slot_ttl,
        tokens=RedisRateLimitStore(mux, breaker, "gcra", settings.inflight_slot_ttl),
        jobs=RedisJobStore(mux, breaker, blocking, maxlen=settings.jobs_stream_maxlen,
                           list_keep=settings.jobs_list_keep),
        mux=mux,
        blocking=blocking,
    )
