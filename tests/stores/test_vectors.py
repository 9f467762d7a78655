"""The semantic cache's vector index: one suite, in memory and on a real Redis (both
clients). The Redis case is the documented fallback: hashes scored in the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from gateway.stores import connect_store_client
from gateway.stores.breaker import StoreBreaker
from gateway.stores.vectors import MemoryVectorIndex, RedisVectorIndex
from tests.processes import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["memory", "redis", "redis-py"])
def index(request: pytest.FixtureRequest, redis_url: str) -> Any:
    @contextlib.asynccontextmanager
    async def open_index() -> AsyncIterator[Any]:
        if request.param == "memory":
            yield MemoryVectorIndex()
            return
        client = connect_store_client(redis_url, kind="mux" if request.param == "redis"
                                      else request.param)
        try:
            yield RedisVectorIndex(client, StoreBreaker("redis", 3, 1.0, None))
        finally:
            await client.execute("FLUSHDB")
            await client.aclose()

    return open_index


def unit(*values: float) -> np.ndarray:
    v = np.zeros(384, dtype=np.float32)
    v[:len(values)] = values
    return v / np.linalg.norm(v)


def test_nearest_live_entry_per_partition_capped_oldest_first(index):
    async def go() -> None:
        async with index() as vectors:
            assert await vectors.search("p", unit(1)) is None
            await vectors.add("p", unit(1, 0), "k-x", 60, 2)
            await vectors.add("p", unit(0, 1), "k-y", 60, 2)
            await vectors.add("q", unit(1, 0.1), "k-q", 60, 2)
            score, key = await vectors.search("p", unit(1, 0.2))
            assert key == "k-x" and score == pytest.approx(float(unit(1, 0.2) @ unit(1)))
            assert (await vectors.search("q", unit(0, 1)))[1] == "k-q"  # its own only
            await vectors.add("p", unit(1, 1), "k-z", 60, 2)  # over the cap: k-x goes
            assert (await vectors.search("p", unit(1, 0)))[1] == "k-z"
            await vectors.add("e", unit(1), "k-e", 0.05, 2)
            await asyncio.sleep(0.1)
            assert await vectors.search("e", unit(1)) is None  # expired

    asyncio.run(go())
