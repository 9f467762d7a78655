"""One suite for every store implementation: memory and a real (throwaway) Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.stores import connect_mux, connect_redis
from gateway.stores.memory import MemoryCacheStore, MemoryInFlightStore
from gateway.stores.redis import RedisCacheStore, RedisInFlightStore
from tests.processes import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def stores(request: pytest.FixtureRequest, redis_url: str) -> Any:
    """Opens (cache store, in-flight store) of one kind inside the test's event loop;
    Redis ones over a database emptied afterwards."""

    @contextlib.asynccontextmanager
    async def open_stores() -> AsyncIterator[tuple[Any, Any]]:
        if request.param == "memory":
            yield MemoryCacheStore(1 << 20), MemoryInFlightStore()
            return
        client = connect_mux(redis_url)
        try:
            yield RedisCacheStore(client), RedisInFlightStore(client, ttl=30)
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()

    return open_stores


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_cache_get_set_delete(stores):
    async def go() -> None:
        async with stores() as (cache, _):
            assert await cache.get("k") is None
            await cache.set("k", b"v\x00\n1", 30)
            assert await cache.get("k") == b"v\x00\n1"
            await cache.set("k", b"v2", 30)
            assert await cache.get("k") == b"v2"
            await cache.delete("k")
            assert await cache.get("k") is None
            await cache.delete("never-set")

    run(go())


def test_cache_entries_expire(stores):
    async def go() -> None:
        async with stores() as (cache, _):
            await cache.set("short", b"v", 0.1)
            await cache.set("long", b"v", 30)
            await asyncio.sleep(0.2)
            assert await cache.get("short") is None
            assert await cache.get("long") == b"v"

    run(go())


def test_in_flight_cap_release_and_count(stores):
    async def go() -> None:
        async with stores() as (_, inflight):
            slots = [await inflight.acquire("acme", 3) for _ in range(4)]
            assert all(slots[:3]) and slots[3] is None
            assert len(set(slots[:3])) == 3
            assert await inflight.count("acme") == 3
            assert await inflight.acquire("beta", 3) is not None  # keys count apart
            await inflight.release("acme", slots[0])
            await inflight.release("acme", slots[0])  # twice is harmless
            assert await inflight.count("acme") == 2
            assert await inflight.acquire("acme", 3) is not None
            await inflight.refresh([(s, "acme") for s in slots[1:3]])
            assert await inflight.count("acme") == 3

    run(go())


def test_concurrent_acquires_never_exceed_the_cap(stores):
    async def go() -> list[str | None]:
        async with stores() as (_, inflight):
            return list(await asyncio.gather(*(inflight.acquire("t", 10) for _ in range(100))))

    assert sum(s is not None for s in run(go())) == 10


def test_redis_slots_expire_unless_refreshed(redis_url):
    async def go() -> None:
        client = connect_mux(redis_url)
        store = RedisInFlightStore(client, ttl=0.3)
        try:
            kept, dropped = await store.acquire("k", 5), await store.acquire("k", 5)
            assert kept and dropped
            await asyncio.sleep(0.2)
            await store.refresh([(kept, "k")])
            await asyncio.sleep(0.2)
            assert await store.count("k") == 1  # the refreshed one lives on
            assert await store.acquire("k", 2) is not None  # expired slots free room
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()

    run(go())


def test_memory_cache_is_an_lru_bounded_in_bytes():
    async def go() -> None:
        cache = MemoryCacheStore(max_bytes=30)
        await cache.set("a", b"x" * 9, 30)  # 10 bytes with its key
        await cache.set("b", b"x" * 9, 30)
        await cache.set("c", b"x" * 9, 30)
        assert await cache.get("a") is not None  # a is now the most recent
        await cache.set("d", b"x" * 9, 30)  # evicts b, the least recent
        assert await cache.get("b") is None
        assert cache.size <= 30 and len(cache) == 3
        await cache.set("huge", b"x" * 100, 30)  # larger than the budget: never stored
        assert await cache.get("huge") is None and len(cache) == 3

    run(go())




def test_redis_py_client_survives_a_restart(redis_server):
    """The key store's and `limits`' client: idle pooled connections to a Redis that
    restarted are replaced, not failed once each (redis-py 8.1 with RESP3 hands them out
    stale unless told otherwise)."""
    async def go() -> list[object]:
        client = connect_redis(redis_server.url)
        try:
            await asyncio.gather(*(client.ping() for _ in range(5)))  # 5 pooled connections
            redis_server.stop()
            await asyncio.sleep(0.2)  # their sockets see the server go
            redis_server.start()
            return [await client.ping() for _ in range(5)]
        finally:
            await client.aclose()

    assert run(go()) == [True] * 5
