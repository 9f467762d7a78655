"""One suite for every cache store implementation: memory and a real (throwaway) Redis.
(The rate-limit stores have theirs: test_rate_limit_store.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.cache_entry import CachedAnswer
from gateway.stores import connect_mux, connect_redis, connect_store_client
from gateway.stores.breaker import StoreBreaker
from gateway.stores.memory import MemoryCacheStore
from gateway.stores.redis import RedisCacheStore
from gateway.stores.redis_bridge import StoreScript
from tests.processes import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["memory", "redis", "redis-py"])
def stores(request: pytest.FixtureRequest, redis_url: str) -> Any:
    """Opens a cache store of one kind inside the test's event loop; a Redis one over a
    database emptied afterwards."""

    @contextlib.asynccontextmanager
    async def open_stores() -> AsyncIterator[Any]:
        if request.param == "memory":
            yield MemoryCacheStore(1 << 20)
            return
        client = connect_store_client(redis_url, kind="mux" if request.param == "redis"
                                      else request.param)
        try:
            yield RedisCacheStore(client, StoreBreaker("redis", 3, 1.0, None))
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()

    return open_stores


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def answer(body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()) -> CachedAnswer:
    return CachedAnswer(200, headers, body, 1_700_000_000.5)


def test_cache_get_set_delete(stores):
    async def go() -> None:
        async with stores() as cache:
            assert await cache.get("k") is None
            first = CachedAnswer(203, ((b"content-type", b"application/json"),
                                       (b"x-odd", b"\xff\x00 latin-1")), b"v\x00\n1", 12.25)
            await cache.set("k", first, 30)
            assert await cache.get("k") == first  # status, headers, body, time: all kept
            await cache.set("k", answer(b"v2"), 30)
            assert await cache.get("k") == answer(b"v2")
            await cache.delete("k")
            assert await cache.get("k") is None
            await cache.delete("never-set")

    run(go())


def test_cache_entries_expire(stores):
    async def go() -> None:
        async with stores() as cache:
            await cache.set("short", answer(b"v"), 0.1)
            await cache.set("long", answer(b"v"), 30)
            await asyncio.sleep(0.2)
            assert await cache.get("short") is None
            assert await cache.get("long") == answer(b"v")

    run(go())


def test_redis_entries_of_another_format_read_as_misses(redis_url):
    async def go() -> list[object]:
        client = connect_mux(redis_url)
        cache = RedisCacheStore(client, StoreBreaker("redis", 3, 1.0, None))
        try:
            await cache.set("k", answer(b"body"), 30)
            stored = await client.execute("GET", "gw:cache:k")
            assert stored.startswith(b'{"v":1,')  # the documented layout
            other = stored.replace(b'"v":1', b'"v":99', 1)
            await client.execute("SET", "gw:cache:other", other)
            await client.execute("SET", "gw:cache:garbage", b"not an entry")
            return [await cache.get("k"), await cache.get("other"),
                    await cache.get("garbage")]
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()

    assert run(go()) == [answer(b"body"), None, None]


def test_memory_cache_size_follows_replacements_expiry_and_real_memory():
    import tracemalloc

    async def go() -> tuple[int, int, list[int]]:
        now = [0.0]
        cache = MemoryCacheStore(max_bytes=1 << 30, clock=lambda: now[0])
        sizes = []
        small, large = answer(b"s" * 10), answer(b"l" * 1000)
        await cache.set("k", small, 30)
        await cache.set("k", large, 30)  # replaced: counted once, at its new size
        sizes.append(cache.size - (1 + large.size))
        await cache.set("gone", small, 5)
        now[0] = 10.0
        assert await cache.get("gone") is None  # expired: dropped and uncounted
        sizes.append(cache.size - (1 + large.size))
        tight = MemoryCacheStore(max_bytes=1 + small.size)
        await tight.set("k", small, 30)
        await tight.set("k", large, 30)  # too large to keep: the old answer goes too
        assert await tight.get("k") is None
        sizes.append(tight.size)
        # The budget is real memory: entries of typical shape, counted vs allocated.
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            big = MemoryCacheStore(max_bytes=1 << 30)
            for i in range(2000):
                headers = tuple((f"x-header-{j}".encode(), f"value-{i}-{j}".encode())
                                for j in range(8))
                await big.set(f"c1:tenant:route:{i:064x}",
                              CachedAnswer(200, headers, b"x" * 200 + str(i).encode(), 1.0), 30)
            allocated = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        return big.size, allocated, sizes

    counted, allocated, sizes = run(go())
    assert sizes == [0, 0, 0]
    assert 0.85 < counted / allocated < 1.3, (counted, allocated)


def test_memory_cache_counts_headers_and_shares_the_stored_answer():
    async def go() -> None:
        cache = MemoryCacheStore(max_bytes=1 << 20)
        plain, with_headers = answer(b"body"), answer(b"body", ((b"h" * 100, b"v" * 100),))
        assert with_headers.size >= plain.size + 200
        await cache.set("k", with_headers, 30)
        assert await cache.get("k") is with_headers  # nothing decoded or copied per hit

    run(go())


def test_memory_cache_is_an_lru_bounded_in_bytes():
    async def go() -> None:
        entry = answer(b"x" * 36)
        cost = 1 + entry.size  # a one-letter key and the answer
        cache = MemoryCacheStore(max_bytes=3 * cost)
        await cache.set("a", entry, 30)
        await cache.set("b", entry, 30)
        await cache.set("c", entry, 30)
        assert await cache.get("a") is not None  # a is now the most recent
        await cache.set("d", entry, 30)  # evicts b, the least recent
        assert await cache.get("b") is None
        assert cache.size == 3 * cost and len(cache) == 3
        await cache.set("huge", answer(b"x" * 4 * cost), 30)  # over the budget: never stored
        assert await cache.get("huge") is None and len(cache) == 3
        await cache.delete("a")
        assert cache.size == 2 * cost

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


@pytest.mark.parametrize("kind", ["mux", "redis-py"])
def test_each_store_client_reloads_a_script_redis_has_forgotten(redis_url, kind):
    # A Redis restart (or SCRIPT FLUSH) forgets loaded scripts: EVALSHA's NOSCRIPT must
    # load it again, whichever client sends it (redis-py names the error NoScriptError).
    async def go() -> object:
        client = connect_store_client(redis_url, kind=kind)
        try:
            await client.execute("SCRIPT", "FLUSH")
            return await StoreScript(client, "return ARGV[1]")([], ["again"])
        finally:
            await client.aclose()

    assert run(go()) == b"again"
