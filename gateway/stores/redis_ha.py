"""Clients for each kind of GATEWAY_REDIS_URL: one server, a Redis Cluster, Sentinel.

A feature of the URL, not of any one store: whatever needs Redis (the limits, the cache,
the key store, a job queue) asks `connect_redis` (redis-py: every command, pipelines,
blocking reads, streams) or `connect_store_client` (the stores' hot-path client) in
gateway/stores/__init__.py, which end here:

| URL                    | redis-py client                         | the stores' client        |
| ---------------------- | --------------------------------------- | ------------------------- |
| `redis://`, `unix://`  | `Redis`                                 | `MuxRedis`                |
| `redis+cluster://`     | `RedisCluster` (follows MOVED/ASK)      | `MuxCluster`              |
| `redis+sentinel://`    | `Sentinel.master_for(service)`          | `MuxRedis` + a locator    |

Behind Sentinel each connect asks the sentinels, in order, for the primary's address;
a connection to a node that became a replica is dropped at its first READONLY reply
(both clients), so after a failover the next connect finds the new primary. In a
cluster, a multi-key command needs its keys in one slot: give them one hash tag
(`{tenant}`), as the rate-limit keys do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

from gateway.stores.redis_mux import Locate, MuxRedis
from gateway.stores.redis_url import RedisTarget, connection_options, is_tls

# The options of a node URL that say where, not how: each client places nodes itself.
_WHERE = ("host", "port", "path", "db", "connection_class")

RedisClient = aioredis.Redis | RedisCluster  # what connect_redis gives


def _how(target: RedisTarget) -> dict[str, Any]:
    """The node URL's connection options for redis-py's constructors (TLS as `ssl`)."""
    options = connection_options(target.node_url)
    kwargs = {k: v for k, v in options.items() if k not in _WHERE}
    if is_tls(options):
        kwargs["ssl"] = True
    return kwargs


class SentinelRedis(aioredis.Redis):
    """redis-py's client of the primary behind Sentinel; closing it closes its
    connections to the sentinels too (redis-py leaves those open)."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            for client in self.sentinel_manager.sentinels:
                await client.aclose()


def redis_py_client(target: RedisTarget, timeout: float, max_connections: int
                    ) -> RedisClient:
    """redis-py's client for a cluster or Sentinel target (no I/O until first use)."""
    timeouts: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if target.kind == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
            max_connections=max_connections, decode_responses=False,
            health_check_interval=0, **timeouts, **_how(target))
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]  # typed in newer redis
        list(target.nodes),
        sentinel_kwargs={**timeouts, "password": target.sentinel_password},
        **timeouts)
    db = int(connection_options(target.node_url).get("db") or 0)
    client: SentinelRedis = sentinel.master_for(
        target.service, redis_class=SentinelRedis, db=db, decode_responses=False,
        max_connections=max_connections, health_check_interval=0,
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
        **timeouts, **_how(target))
    client.sentinel_manager = sentinel
    return client


def sentinel_locator(target: RedisTarget, timeout: float) -> Locate:
    """Asks the sentinels, in order, for the primary's address (a MuxRedis `locate`)."""
    password = target.sentinel_password

    async def locate() -> tuple[str, int]:
        for host, port in target.nodes:
            auth = f":{quote(password, safe='')}@" if password else ""
            scheme = target.node_url.split("://", 1)[0]
            sentinel = MuxRedis(f"{scheme}://{auth}{host}:{port}/0", timeout, timeout)
            try:
                reply = await sentinel.execute("SENTINEL", "get-master-addr-by-name",
                                               target.service)
            except RedisError:
                continue
            finally:
                await sentinel.aclose()
            if reply:
                return reply[0].decode(), int(reply[1])
        raise RedisConnectionError(
            f"no sentinel answered with a primary for {target.service!r}")

    return locate
