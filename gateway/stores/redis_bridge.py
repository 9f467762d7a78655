"""The stores' Redis calls behind one small protocol, with two implementations.

`MuxRedis` (redis_mux.py) is the default: one pipelined connection per process, chosen
by measurement (a charge costs about half the CPU it costs through redis-py; README,
Performance). `RedisPyBridge` sends the same commands through redis-py's asyncio
client over a blocking pool (a caller waits for a free connection up to the store
timeout instead of failing). Both run the same store contract suites (tests/stores), and
`GATEWAY_STORE_REDIS_CLIENT` picks one, so dropping MuxRedis later is a one-line change
in `connect_store_client`. The `limits` storage bridge (storage/redis/bridge.py) is the
model.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError
from redis.maint_notifications import MaintNotificationsConfig

POOL_SIZE = 64  # connections a process may hold open to Redis through redis-py


class StoreRedis(Protocol):
    """What the Redis stores need of a client: one command, a liveness probe, close."""

    async def execute(self, *args: Any) -> Any:
        """Send one command; a Redis error reply raises redis-py's ResponseError."""
        ...

    async def execute_unanswered(self, *args: Any) -> None:
        """Send a command whose reply nobody reads: a client that keeps its commands in
        order on one connection may return before the reply (MuxRedis); others wait."""
        ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


class RedisPyBridge:
    """The store commands through redis-py (replies as raw bytes, as MuxRedis gives)."""

    def __init__(self, url: str, timeout: float, connect_timeout: float):
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=connect_timeout, health_check_interval=0,
            decode_responses=False,
            # As in connect_redis: with maintenance notifications on, a pooled connection
            # is not checked on checkout and fails one command after a Redis restart.
            maint_notifications_config=MaintNotificationsConfig(enabled=False))
        self._client = aioredis.Redis.from_pool(pool)

    async def execute(self, *args: Any) -> Any:
        # The stores read the replies of GET and EVALSHA only, which redis-py passes on as
        # Redis sent them (bytes, ints, lists; decode_responses is off), as MuxRedis does.
        return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def execute_unanswered(self, *args: Any) -> None:
        # A pool: a later command may go on another connection, so this one must be done.
        await self.execute(*args)

    async def ping(self) -> None:
        await self._client.execute_command("PING")  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        await self._client.aclose()


class StoreScript:
    """A Lua script run by EVALSHA, loaded on the first NOSCRIPT (as redis-py does)."""

    def __init__(self, client: StoreRedis, text: str):
        self.client = client
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            # MuxRedis raises the server's text; redis-py maps it to NoScriptError.
            if not isinstance(exc, NoScriptError) and not str(exc).startswith("NOSCRIPT"):
                raise
        await self.client.execute("SCRIPT", "LOAD", self.text)
        return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
