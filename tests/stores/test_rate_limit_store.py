"""One suite for the rate-limit stores, memory and a real (throwaway) Redis, with every
strategy: all-or-nothing charges over several limits and the in-flight cap, slots,
both backends deciding alike, and a dead Redis surfacing only as StoreUnavailable."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from limits import parse

from gateway.cache_entry import CachedAnswer
from gateway.errors import StoreUnavailable
from gateway.stores import connect_mux, connect_store_client
from gateway.stores.breaker import StoreBreaker
from gateway.stores.memory import MemoryRateLimitStore
from gateway.stores.rate_limits import Check, limit_check
from gateway.stores.redis import RedisCacheStore, RedisRateLimitStore
from gateway.stores.strategies import STRATEGIES
from tests.processes import RedisServer
from tests.servers import free_port

ALL = sorted(STRATEGIES)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


def redis_store(url: str, strategy: str, ttl: float = 30, kind: str = "mux"
                ) -> tuple[Any, RedisRateLimitStore]:
    client = connect_store_client(url, kind=kind)
    return client, RedisRateLimitStore(client, StoreBreaker("redis", 3, 1.0, None), strategy,
                                       ttl)


@pytest.fixture(params=["memory", "redis", "redis-py"])
def opened(request: pytest.FixtureRequest, redis_url: str) -> Any:
    """`opened(strategy)`: a rate-limit store of this kind, inside the test's loop."""

    @contextlib.asynccontextmanager
    async def open_store(strategy: str = "gcra") -> AsyncIterator[Any]:
        if request.param == "memory":
            yield MemoryRateLimitStore(strategy)
            return
        kind = "mux" if request.param == "redis" else request.param
        client, store = redis_store(redis_url, strategy, kind=kind)
        try:
            yield store
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()

    return open_store


def check(spec: str, scope: str = "t/acme") -> Check:
    return limit_check(parse(spec), scope)


@pytest.mark.parametrize("strategy", ALL)
def test_several_limits_charge_all_or_nothing(opened, strategy):
    large, small = check("10/minute"), check("2/minute", "r/acme/a")

    async def go() -> None:
        async with opened(strategy) as store:
            for left in (1, 0):
                got = await store.charge([large, small], 1)
                assert got.admitted and got.limits[1].left == left
            refused = await store.charge([large, small], 1)
            assert refused.verdict == 2  # the second check, the first without room
            assert [s.left_now for s in refused.limits] == [8, 0]
            assert refused.limits[1].retry > 0
            # The refusal charged the tenant-wide limit nothing.
            assert (await store.charge([large], 1)).limits[0].left == 7
            # More than a limit's amount at once: refused outright, a window to wait.
            big = await store.charge([check("10/minute", "t/big")], 11)
            assert big.verdict == 1 and big.limits[0].retry == 60_000_000
            assert (await store.charge([check("10/minute", "t/big")], 10)).admitted

    asyncio.run(go())


@pytest.mark.parametrize("strategy", ALL)
def test_in_flight_cap_is_part_of_the_same_charge(opened, strategy):
    limit = check("100/minute")

    async def go() -> None:
        async with opened(strategy) as store:
            taken = await store.charge([limit], 1, ("acme", 2))
            assert taken.admitted and taken.slot is not None
            assert (await store.charge([limit], 1, ("acme", 2))).slot is not None
            full = await store.charge([limit], 1, ("acme", 2))
            assert full.verdict == -1 and full.slot is None
            assert full.limits[0].left_now == 98  # the cap refused: nothing charged
            assert await store.count("acme") == 2
            await store.release("acme", taken.slot)
            await store.release("acme", taken.slot)  # twice is harmless
            again = await store.charge([limit], 1, ("acme", 2))
            assert again.admitted and again.limits[0].left == 97
            # A limit refusal takes no slot either.
            once = check("1/minute", "t/x")
            assert (await store.charge([once], 1)).admitted
            refused = await store.charge([limit, once], 1, ("acme", 5))
            assert refused.verdict == 2 and refused.slot is None
            assert await store.count("acme") == 2
            assert (await store.charge([limit], 0)).limits[0].left == 97  # cost 0: free
            assert await store.count("beta") == 0  # keys count apart

    asyncio.run(go())


def test_settle_corrects_a_reservation_up_or_down_never_refusing(opened):
    """LLM token limits: an estimate reserved, then the real usage settled (gcra)."""
    tokens = check("1000/hour", "k/acme")

    async def go() -> None:
        async with opened("gcra") as store:
            assert (await store.charge([tokens], 300)).limits[0].left == 700
            await store.settle([tokens], -200)  # used 100 of the 300 reserved
            assert (await store.charge([tokens], 0)).limits[0].left_now == 900
            await store.settle([tokens], 1500)  # an over-run: below empty, not refused
            after = await store.charge([tokens], 1)
            assert not after.admitted and after.limits[0].left_now <= 0
            assert after.limits[0].retry > 1_000_000 * 3600 * 0.5  # waits for the refill
            await store.settle([tokens], -10_000)  # a refund never goes past full
            assert (await store.charge([tokens], 0)).limits[0].left_now == 1000
            await store.settle([tokens], 0)

    asyncio.run(go())


def test_settle_needs_gcra(redis_url):
    async def go() -> None:
        for store in (MemoryRateLimitStore("fixed-window"),
                      redis_store(redis_url, "fixed-window")[1]):
            with pytest.raises(NotImplementedError):
                await store.settle([check("1/second")], 1)

    asyncio.run(go())


def test_concurrent_charges_never_exceed_the_cap_or_the_limit(opened):
    async def go() -> tuple[int, int]:
        async with opened() as store:
            capped = await asyncio.gather(*(store.charge([], 1, ("t", 10))
                                            for _ in range(100)))
            limited = await asyncio.gather(*(store.charge([check("25/hour")], 1)
                                             for _ in range(100)))
            return sum(c.admitted for c in capped), sum(c.admitted for c in limited)

    assert asyncio.run(go()) == (10, 25)


@pytest.mark.parametrize("strategy", ALL)
def test_memory_and_redis_decide_alike(redis_url, strategy):
    """The same charges at the same instants: the Redis store (its Lua) and the memory
    store (strategies.py) give the same verdicts and the same figures."""
    checks = [check("5 per 1 second"), check("3 per 2 second", "r/acme/a")]
    costs = [1, 1, 0, 2, 1, 4, 1, 1, 3, 1, 1, 1, 2, 1, 1, 1, 5, 1, 1, 2]

    async def go() -> int:
        client, redis = redis_store(redis_url, strategy)
        clock = [0]
        memory = MemoryRateLimitStore(strategy, clock=lambda: clock[0])
        admitted = 0
        try:
            for i, cost in enumerate(costs * 2):
                got = await redis.charge(checks, cost)
                clock[0] = got.now  # the memory store decides at Redis' instant
                mine = await memory.charge(checks, cost)
                assert (mine.verdict, mine.limits) == (got.verdict, got.limits), i
                admitted += got.admitted
                await asyncio.sleep(0.013 * (i % 7))
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()
        return admitted

    admitted = asyncio.run(go())
    assert 3 <= admitted < 40  # both admitted and refused some


def test_redis_slots_expire_unless_refreshed(redis_url):
    async def go() -> None:
        client, store = redis_store(redis_url, "gcra", ttl=0.3)
        try:
            kept = (await store.charge([], 1, ("k", 5))).slot
            assert kept and (await store.charge([], 1, ("k", 5))).slot
            await asyncio.sleep(0.2)
            await store.refresh([(kept, "k")])
            await asyncio.sleep(0.2)
            assert await store.count("k") == 1  # the refreshed one lives on
            assert (await store.charge([], 1, ("k", 2))).admitted  # expired: room again
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()

    asyncio.run(go())


def test_gcra_keeps_one_small_key_per_limit_that_expires_when_full(redis_url):
    async def go() -> None:
        client, store = redis_store(redis_url, "gcra")
        try:
            limits = [check("3 per 1 second"), check("100000/day", "r/acme/a")]
            for _ in range(50):
                await store.charge(limits, 1)
            keys = sorted(await client.execute("KEYS", "gw:rl:*"))
            assert keys == [b"gw:rl:g/r/acme/a/100000/86400", b"gw:rl:g/t/acme/3/1"]
            ttl = await client.execute("PTTL", keys[1])
            assert 0 < ttl <= 1000  # full again (and gone) within the second
            await asyncio.sleep(1.05)
            assert await client.execute("EXISTS", keys[1]) == 0
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()

    asyncio.run(go())


def test_memory_state_is_swept_once_it_reads_as_absent():
    clock = [1_000_000_000]
    store = MemoryRateLimitStore("gcra", clock=lambda: clock[0])

    async def go() -> None:
        for tenant in range(100):
            await store.charge([check("10/second", f"t/{tenant}")], 1)
        assert len(store) == 100
        clock[0] += store.SWEEP_INTERVAL  # every bucket full again long since
        await store.charge([check("10/second", "t/last")], 1)
        assert len(store) == 1

    asyncio.run(go())


def test_a_dead_redis_is_store_unavailable_from_every_method():
    """GuardedStore wraps every public coroutine of the Redis stores: none can leak a
    Redis error (a 500) to a policy, and a new method is covered without a call site."""
    async def go() -> None:
        client = connect_mux(f"redis://127.0.0.1:{free_port()}")  # nothing listens
        breaker = StoreBreaker("redis", 100, 1.0, None)
        stores = [RedisRateLimitStore(client, breaker, "gcra", 30),
                  RedisCacheStore(client, breaker)]
        calls = {"charge": ([check("1/second")], 1), "release": ("k", "s"),
                 "count": ("k",), "refresh": ([("s", "k")],), "get": ("k",),
                 "settle": ([check("1/second")], 1),
                 "set": ("k", CachedAnswer(200, (), b"", 0.0), 1.0), "delete": ("k",)}
        for store in stores:
            for name, method in inspect.getmembers(store, inspect.iscoroutinefunction):
                if name.startswith("_"):
                    continue
                with pytest.raises(StoreUnavailable):
                    await method(*calls[name])
        await client.aclose()

    asyncio.run(go())
