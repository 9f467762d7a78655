"""The stores' commands on a Redis Cluster: one `MuxRedis` per primary, each command
sent to the primary that serves its key's hash slot.

The slot map comes from `CLUSTER SLOTS` (asked of a known node, else a seed) when the
client starts and whenever it may be wrong. Redis redirects what it does not serve:
  - `MOVED slot host:port`: the slot lives elsewhere now (resharding done, or a failover
    promoted a replica): the command goes there, and the next call reloads the whole map
    first (a failover moves every slot of the lost node at once);
  - `ASK slot host:port`: the slot is being migrated and this key already moved: the
    command goes there once, after `ASKING` on the same connection, with no other
    command between them (`MuxRedis.execute_asking`); the map stays as it is;
  - `TRYAGAIN` (a multi-key call during a migration): tried again shortly.
A node that cannot be reached fails the call (the breaker counts it) and marks the map
for reloading: after a failover the next calls find the new primary.

Commands without a key (`PING`, `SCRIPT LOAD`) go to every primary: the breaker's probe
succeeds only when every primary answers, and a script is loaded wherever a key may be.
A multi-key script's keys must share one slot: the rate-limit keys carry the tenant as
their hash tag (`{tenant}`, rate_limits.py), so each tenant's limits and in-flight slots
live on one node and charge.lua stays one atomic call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.stores.redis_mux import Arg, MuxRedis
from gateway.stores.redis_url import RedisTarget

MAX_REDIRECTS = 5
TRYAGAIN_PAUSE = 0.02  # seconds
KEYLESS = frozenset({b"PING", b"SCRIPT"})
SCRIPTED = frozenset({b"EVAL", b"EVALSHA", b"FCALL"})


def command_key(args: tuple[Arg, ...]) -> bytes | None:
    """The key that routes a command (a script's first key), or None for keyless ones."""
    name = args[0].encode() if isinstance(args[0], str) else bytes(args[0])  # type: ignore[arg-type]
    name = name.upper()
    if name in KEYLESS:
        return None
    if name in SCRIPTED:
        if int(args[2]) == 0:
            return None
        key = args[3]
    else:
        key = args[1]
    return key.encode() if isinstance(key, str) else bytes(key)  # type: ignore[arg-type]


class MuxCluster:
    """A `StoreRedis` over a Redis Cluster (see the module docstring)."""

    def __init__(self, target: RedisTarget, timeout: float, connect_timeout: float):
        self.target = target
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self._slots: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        self._primaries: list[str] = []
        self._nodes: dict[str, MuxRedis] = {}
        self._stale = True
        self._loading: asyncio.Task[None] | None = None

    def _node(self, address: str) -> MuxRedis:
        node = self._nodes.get(address)
        if node is None:
            host, _, port = address.rpartition(":")
            node = self._nodes[address] = MuxRedis(
                self.target.at(host, int(port)), self.timeout, self.connect_timeout)
        return node

    async def execute(self, *args: Arg) -> Any:
        key = command_key(args)
        if self._stale:
            await self._load_map()
        if key is None:
            try:
                replies = await asyncio.gather(*(self._node(a).execute(*args)
                                                 for a in self._primaries))
            except (RedisConnectionError, RedisTimeoutError):
                self._stale = True  # a primary gone: its replica may have taken over
                raise
            return replies[0]
        slot = key_slot(key)
        asking: str | None = None
        for _ in range(MAX_REDIRECTS):
            address = asking or self._slots[slot]
            if address is None:
                self._stale = True
                raise RedisConnectionError(f"no Redis Cluster node serves slot {slot}")
            node = self._node(address)
            try:
                if asking is not None:
                    return await node.execute_asking(*args)
                return await node.execute(*args)
            except ResponseError as exc:
                text = str(exc)
                kind, _, rest = text.partition(" ")
                asking = None
                if kind == "MOVED":
                    moved_slot, where = rest.split()
                    self._slots[int(moved_slot)] = self._address(where, address)
                    self._stale = True
                elif kind == "ASK":
                    asking = self._address(rest.split()[1], address)
                elif kind == "TRYAGAIN":
                    await asyncio.sleep(TRYAGAIN_PAUSE)
                else:
                    if kind == "CLUSTERDOWN":
                        self._stale = True
                    raise
            except (RedisConnectionError, RedisTimeoutError):
                self._stale = True
                raise
        raise RedisConnectionError("too many Redis Cluster redirections")

    async def execute_unanswered(self, *args: Arg) -> None:
        await self.execute(*args)  # a redirection (MOVED, ASK) must be followed: answered

    @staticmethod
    def _address(where: str, asked: str) -> str:
        """A redirection's `host:port`; an empty host means the node that answered."""
        host, _, port = where.rpartition(":")
        return f"{host or asked.rpartition(':')[0]}:{port}"

    async def _load_map(self) -> None:
        """Reload the slot map, once for every caller arriving meanwhile."""
        loading = self._loading
        if loading is None or loading.done():
            loading = self._loading = asyncio.get_running_loop().create_task(self._fetch())
        await asyncio.shield(loading)

    async def _fetch(self) -> None:
        seeds = [f"{h}:{p}" for h, p in self.target.nodes]
        last: Exception = RedisConnectionError("no Redis Cluster node to ask")
        for address in dict.fromkeys([*self._primaries, *seeds]):
            try:
                reply = await self._node(address).execute("CLUSTER", "SLOTS")
            except (RedisConnectionError, RedisTimeoutError, ResponseError) as exc:
                last = exc
                continue
            slots: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
            primaries: dict[str, None] = {}
            for start, end, primary, *_replicas in reply:
                host = primary[0].decode() or address.rpartition(":")[0]
                node = f"{host}:{int(primary[1])}"
                primaries[node] = None
                slots[int(start):int(end) + 1] = [node] * (int(end) - int(start) + 1)
            self._slots, self._primaries = slots, list(primaries)
            self._stale = False
            return
        raise RedisConnectionError(f"cannot load the Redis Cluster slot map: {last}")

    async def ping(self) -> None:
        await self.execute("PING")

    async def aclose(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            await asyncio.gather(self._loading, return_exceptions=True)
        await asyncio.gather(*(node.aclose() for node in self._nodes.values()))
