"""The rate-limit step against Redis, in process: one script call vs the two-step path.

    python bench/bench_redis_charge.py [--calls 3000] [--rounds 3]

Starts a throwaway redis-server on a free port and, in this process (uvloop, the
gateway's own Redis client settings), times sequential calls, alternating the cases
for `--rounds` rounds: a bare PING through each client (the stores' MuxRedis, and
redis-py, which `limits` uses), the gateway's one-call charge
(`RedisRateLimitStore.charge`, one limit, over MuxRedis), the same script through
redis-py, the charge with an in-flight cap (and its release), and the two round trips
of the `limits` path (`get_window_stats`, then `hit`). Prints, per case, the median
over rounds of the mean wall time and CPU time per call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable

import uvloop
from harness import LOAD_CORE, free_port, start, stop, wait_port
from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from gateway.stores import connect_mux, connect_redis
from gateway.stores.redis import (
    RATE_LIMIT_PREFIX,
    RedisInFlightStore,
    RedisRateLimitStore,
    lua_script,
)


async def measure(port: int, calls: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    url = f"redis://127.0.0.1:{port}"
    client = connect_redis(url, 1.0)
    mux = connect_mux(url, 1.0)
    inflight = RedisInFlightStore(mux, 30)
    store = RedisRateLimitStore(mux, inflight)
    script = client.register_script(lua_script("charge_limits"))
    limiter = MovingWindowRateLimiter(storage_from_string(
        "async+" + url, implementation="redispy", connection_pool=client.connection_pool,
        key_prefix=RATE_LIMIT_PREFIX))
    item = parse("100000000/hour")  # never refuses: the figures are the cost of counting

    async def ping() -> None:
        await client.ping()

    async def one_call() -> None:
        await store.charge([(item, ("t", "one"))], 1)

    async def one_call_redis_py() -> None:  # the same keys and arguments as one_call
        await script(keys=[f"{RATE_LIMIT_PREFIX}:{item.key_for('t', 'one')}"],
                     args=[1, 1, item.amount, item.get_expiry()])

    async def one_call_cap() -> None:
        got = await store.charge([(item, ("t", "cap"))], 1, ("cap", 1_000_000))
        assert got.slot is not None
        await inflight.release("cap", got.slot)  # as the request's cleanup does

    async def two_steps() -> None:
        await limiter.get_window_stats(item, "t", "two")
        await limiter.hit(item, "t", "two")

    cases: dict[str, Callable[[], Awaitable[None]]] = {
        "PING (MuxRedis)": mux.ping, "PING (redis-py)": ping,
        "one call": one_call, "one call (redis-py)": one_call_redis_py,
        "one call + cap (and release)": one_call_cap, "two steps (limits)": two_steps,
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
    port = free_port()
    redis = start(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                  LOAD_CORE)
    try:
        wait_port(port)
        results = uvloop.run(measure(port, args.calls, args.rounds))
    finally:
        stop(redis)
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:<30} {wall:7.1f} us wall  {cpu:7.1f} us CPU per call "
              f"(median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
