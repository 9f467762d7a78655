"""Shared state behind small protocols, in memory (one machine) or on Redis (replicas).

`connect_redis(url)` is the one place a Redis client is configured: short timeouts so a
dead Redis costs milliseconds, not seconds, and a pool sized for the gateway's
concurrency. Redis errors are mapped to gateway errors inside each store, never above.
"""

from __future__ import annotations

import redis.asyncio as aioredis

# Fail fast: the stores' own circuit breakers decide what an outage means for requests.
REDIS_SOCKET_TIMEOUT = 0.25
REDIS_CONNECT_TIMEOUT = 0.25
REDIS_MAX_CONNECTIONS = 256


def connect_redis(url: str) -> aioredis.Redis:
    """An asyncio Redis client for `url` (no I/O until first use)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
        max_connections=REDIS_MAX_CONNECTIONS,
        health_check_interval=0,
        decode_responses=False,
    )
