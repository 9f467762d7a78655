"""The rate-limit step against Redis, in process: one script call per strategy.

    python bench/bench_redis_charge.py [--calls 3000] [--rounds 3]

Starts a throwaway redis-server on a free port and, in this process (uvloop, the
gateway's own Redis client settings), times sequential calls, alternating the cases
for `--rounds` rounds: a bare PING through each client (the stores' MuxRedis, and
redis-py, which the key store uses), the gateway's one-call charge
(`RedisRateLimitStore.charge`, one limit, over MuxRedis) with each strategy, and the
default one with an in-flight cap (and its release). Prints, per case, the median over
rounds of the mean wall time and CPU time per call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial

import uvloop
from harness import redis_server, stop
from limits import parse

from gateway.stores import connect_mux, connect_redis
from gateway.stores.breaker import StoreBreaker
from gateway.stores.rate_limits import limit_check
from gateway.stores.redis import RedisRateLimitStore
from gateway.stores.strategies import STRATEGIES


async def measure(port: int, calls: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    url = f"redis://127.0.0.1:{port}"
    client = connect_redis(url, 1.0)
    mux = connect_mux(url, 1.0)
    breaker = StoreBreaker("redis", 3, 1.0, None, probe=mux.ping)
    stores = {name: RedisRateLimitStore(mux, breaker, name, 30) for name in STRATEGIES}
    item = parse("100000000/hour")  # never refuses: the figures are the cost of counting
    one = [limit_check(item, "t/one")]
    capped = [limit_check(item, "t/cap")]

    async def ping() -> None:
        await client.ping()

    async def one_call(store: RedisRateLimitStore) -> None:
        await store.charge(one, 1)

    async def one_call_cap() -> None:
        store = stores["gcra"]
        got = await store.charge(capped, 1, ("cap", 1_000_000))
        assert got.slot is not None
        await store.release("cap", got.slot)  # as the request's cleanup does

    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "PING (MuxRedis)": mux.ping, "PING (redis-py)": ping,
        **{f"one call, {name}": partial(one_call, store) for name, store in stores.items()},
        "one call + cap (and release), gcra": one_call_cap,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            for _ in range(200):  # warm
                await case()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                await case()
            results[name].append(((time.perf_counter() - wall) / calls * 1e6,
                                  (time.process_time() - cpu) / calls * 1e6))
    await client.aclose()
    await mux.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    redis, port = redis_server()
    try:
        results = uvloop.run(measure(port, args.calls, args.rounds))
    finally:
        stop(redis)
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:<40} {wall:7.1f} us wall  {cpu:7.1f} us CPU per call "
              f"(median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
