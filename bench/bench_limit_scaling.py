"""What rate limiting costs as tenants and limits grow: state per tenant, CPU per request.

    python bench/bench_limit_scaling.py [--requests 100000] [--calls 20000] [--rounds 3]

Starts a throwaway redis-server on a free port and, in this process (uvloop):

1. Redis memory of one tenant: `--requests` charges of one tenant, with each strategy,
   against "60/minute; 100000/day" (the shipped pro tier's shape: mostly refused) and
   against "100000/day" alone (all admitted: the daily window fills to its size), then
   the sum of `MEMORY USAGE` over that tenant's keys.
2. Per-request CPU and state as the tenants (1, 1,000, 100,000 distinct tenants, each
   charged once before timing, so that many states exist) and the limit's size
   (60/minute vs 100000/day) grow, for the memory and the Redis store, with the default
   strategy (gcra) and the moving window for comparison. Each case times `--calls`
   charges spread round-robin over its tenants, exactly as the rate-limit policy
   makes them (`plan_for` once per tenant, then one `charge` per request), alternating
   cases for `--rounds` rounds; CPU is this process's (the store's Lua runs in Redis:
   Redis' own CPU is printed beside it). State is bytes per tenant, after charging every
   tenant once: the memory store's allocations with the policy's plans (tracemalloc),
   or `MEMORY USAGE` of the live keys of the last 100 tenants charged on Redis (a gcra
   key lives only until its bucket is full again: about one refill interval here).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tracemalloc
from typing import Any

import uvloop
from harness import redis_server, stop
from limits import parse_many

from gateway.config.limits import EffectiveLimits
from gateway.pipeline.rate_limit import Plan, plan_for
from gateway.stores import connect_mux
from gateway.stores.breaker import StoreBreaker
from gateway.stores.memory import MemoryRateLimitStore
from gateway.stores.redis import RedisRateLimitStore
from gateway.stores.strategies import STRATEGIES

TENANTS = [1, 1_000, 100_000]
LIMITS = ["60/minute", "100000/day"]
STRATEGIES_COMPARED = ["gcra", "moving-window"]


def limits_of(spec: str) -> EffectiveLimits:
    return EffectiveLimits(rate=tuple(parse_many(spec)), route_rate=(), max_in_flight=None,
                           cost=1)


async def redis_info(mux: Any, field: str, section: str) -> int:
    text = (await mux.execute("INFO", section)).decode()
    line = next(x for x in text.splitlines() if x.startswith(field + ":"))
    return int(float(line.split(":")[1]))


async def redis_cpu(mux: Any) -> float:
    text = (await mux.execute("INFO", "cpu")).decode()
    fields = dict(x.split(":") for x in text.splitlines() if ":" in x)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


async def one_tenant_memory(mux: Any, breaker: StoreBreaker, requests: int) -> None:
    for spec in ("60/minute; 100000/day", "100000/day"):
        print(f"Redis MEMORY USAGE of one tenant's keys after {requests:,} requests "
              f"against \"{spec}\":")
        for strategy in STRATEGIES:
            store = RedisRateLimitStore(mux, breaker, strategy, 30)
            _, checks, _ = plan_for("acme", "api", limits_of(spec))
            admitted = 0
            for _ in range(0, requests, 500):
                got = await asyncio.gather(*(store.charge(checks, 1) for _ in range(500)))
                admitted += sum(g.admitted for g in got)
            keys = await mux.execute("KEYS", store.prefix + "*acme*")
            total = sum([await mux.execute("MEMORY", "USAGE", k, "SAMPLES", "0")
                         for k in keys])
            print(f"  {strategy:<24} {len(keys)} keys, {total:>9,} bytes "
                  f"({admitted:,} admitted)")
        await mux.execute("FLUSHALL")


class Case:
    """One store with `n` tenants charged once each, and the policy's plans for them."""

    def __init__(self, store: Any, spec: str, n: int):
        self.store, self.limits = store, limits_of(spec)
        self.tenants = [f"tenant-{i}" for i in range(n)]
        self.plans: dict[tuple[str, str], Plan] = {}

    async def request(self, tenant: str) -> None:  # what RateLimitPolicy.on_request does
        plan = self.plans.get((tenant, "api"))
        if plan is None or plan[0] is not self.limits:
            plan = self.plans[(tenant, "api")] = plan_for(tenant, "api", self.limits)
        await self.store.charge(plan[1], self.limits.cost, plan[2])

    async def charge_everyone(self) -> None:
        for i in range(0, len(self.tenants), 500):
            await asyncio.gather(*(self.request(t) for t in self.tenants[i:i + 500]))


async def state_bytes(mux: Any, case: Case, kind: str) -> float:
    """Bytes per tenant: the memory store's allocations (with the plans), or the live
    Redis keys of the last 100 tenants charged."""
    if kind == "memory":
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await case.charge_everyone()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return grown / len(case.tenants)
    await case.charge_everyone()
    sample = case.tenants[-100:]
    sizes = [await mux.execute("MEMORY", "USAGE", case.store.prefix + check.key,
                               "SAMPLES", "0")
             for t in sample for check in case.plans[(t, "api")][1]]
    return sum(s or 0 for s in sizes) / len(sample)


async def scaling(mux: Any, breaker: StoreBreaker, calls: int, rounds: int) -> None:
    names = [(kind, strategy, spec, n) for kind in ("memory", "redis")
             for strategy in STRATEGIES_COMPARED for spec in LIMITS for n in TENANTS]
    cases: dict[tuple[str, str, str, int], Case] = {}
    state: dict[tuple[str, str, str, int], float] = {}
    for name in names:
        kind, strategy, spec, n = name
        store = (MemoryRateLimitStore(strategy) if kind == "memory"
                 else RedisRateLimitStore(mux, breaker, strategy, 30))
        cases[name] = Case(store, spec, n)
        state[name] = await state_bytes(mux, cases[name], kind)
    cpu: dict[tuple[str, str, str, int], list[float]] = {c: [] for c in names}
    redis_share: dict[tuple[str, str, str, int], list[float]] = {c: [] for c in names}
    for _ in range(rounds):
        for name in names:
            case = cases[name]
            tenants, n = case.tenants, len(case.tenants)
            redis_before = await redis_cpu(mux)
            cpu_before = time.process_time()
            for i in range(calls):
                await case.request(tenants[i % n])
            cpu[name].append((time.process_time() - cpu_before) / calls * 1e6)
            redis_share[name].append((await redis_cpu(mux) - redis_before) / calls * 1e6)
    print(f"\nPer request: {calls:,} charges per case round-robin over its tenants, median "
          f"of {rounds} rounds; state: bytes per tenant (memory: store state and plans, "
          "allocated; Redis: MEMORY USAGE of live keys)")
    print(f"  {'store':<7} {'strategy':<14} {'limit':<11} {'tenants':>8} "
          f"{'CPU us':>8} {'Redis CPU us':>13} {'state B':>9}")
    for name in names:
        kind, strategy, spec, n = name
        redis_us = (f"{statistics.median(redis_share[name]):13.1f}" if kind == "redis"
                    else f"{'-':>13}")
        print(f"  {kind:<7} {strategy:<14} {spec:<11} {n:>8,} "
              f"{statistics.median(cpu[name]):8.1f} {redis_us} {state[name]:9.0f}")


async def run(port: int, args: argparse.Namespace) -> None:
    mux = connect_mux(f"redis://127.0.0.1:{port}", 30.0)  # a busy machine, not an outage
    breaker = StoreBreaker("redis", 3, 1.0, None, probe=mux.ping)
    try:
        await one_tenant_memory(mux, breaker, args.requests)
        await scaling(mux, breaker, args.calls, args.rounds)
    finally:
        await mux.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    redis, port = redis_server()
    try:
        uvloop.run(run(port, args))
    finally:
        stop(redis)


if __name__ == "__main__":
    main()
