"""Soak: a steady load for a long time; does the gateway's memory stay flat, and does
every answer stay what it should be?

    python bench/soak.py [--minutes 30] [--rate 200] [--warmup 0.2]

One `gateway serve` on a throwaway Redis, the fast fake upstream, and a paced client
(asyncio + httpx, `--rate` requests a second, open loop) sending a fixed mix: 20
tenants with real API keys, a plain route, a cached route (a few distinct bodies: hits
and misses), a route whose upstream refuses connections (502 expected), and one tenant
over its limit (429 expected). Every answer is checked against what its kind must give;
anything else is an error. The gateway's RSS is sampled every second: growth is measured
from the end of the warm-up (`--warmup`, a fraction of the run) to the end, and the run
fails (exit 1) if it exceeds 5 % or any answer was wrong. tests/test_soak.py runs it for
two minutes in CI; docs/operations.md quotes the full run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import fake_upstream, free_port, gateway, redis_server, rss_kib, stop

TENANTS = [f"soak{i:02d}" for i in range(20)]
# broken: 502 until the breaker opens on the refusing upstream, then 503 (docs/routes.md)
EXPECTED = {"plain": {200}, "cached": {200}, "broken": {502, 503}, "limited": {200, 429}}
MAX_GROWTH = 0.05


def config(upstream_port: int) -> tuple[str, dict[str, str]]:
    routes = {"version": 1, "upstreams": {
        "fast": {"targets": [{"url": f"http://127.0.0.1:{upstream_port}"}]},
        "gone": {"targets": [{"url": f"http://127.0.0.1:{free_port()}"}]}},
        "routes": [
            {"name": "plain", "match": {"prefix": "/plain"}, "upstream": "fast",
             "rewrite": "/"},
            {"name": "cached", "match": {"prefix": "/cached"}, "upstream": "fast",
             "rewrite": "/", "cache": {"ttl": 5}},
            {"name": "broken", "match": {"prefix": "/broken"}, "upstream": "gone",
             "rewrite": "/", "retry": {"attempts": 1}}]}
    tiers = {"version": 1, "tiers": {"steady": {"rate": "1000000/hour"},
                                     "tight": {"rate": "2/second"}}}
    tenants = {"version": 1, "tenants": {**{t: {"tier": "steady"} for t in TENANTS},
                                         "tight": {"tier": "tight"}}}
    return yaml.safe_dump(routes), {"tiers.yaml": yaml.safe_dump(tiers),
                                    "tenants.yaml": yaml.safe_dump(tenants)}


def issue_keys(redis_url: str) -> dict[str, str]:
    from gateway.auth.api_keys import issue_key
    from gateway.auth.key_store import RedisKeyStore
    from gateway.stores import connect_redis

    keys = {t: issue_key(t, name="soak") for t in [*TENANTS, "tight"]}

    async def put() -> None:
        redis = connect_redis(redis_url)
        try:
            await RedisKeyStore(redis).put_many([r for _, r in keys.values()], [])
        finally:
            await redis.aclose()

    asyncio.run(put())
    return {t: secret for t, (secret, _) in keys.items()}


def pick(rng: random.Random) -> tuple[str, str, str]:
    """(kind, tenant, path) of one request of the mix."""
    roll = rng.random()
    tenant = rng.choice(TENANTS)
    if roll < 0.45:
        return "plain", tenant, f"/plain/{rng.randrange(1000)}"
    if roll < 0.85:
        return "cached", tenant, f"/cached/{rng.randrange(8)}"
    if roll < 0.95:
        return "broken", tenant, "/broken/x"
    return "limited", "tight", "/plain/x"


async def drive(url: str, keys: dict[str, str], seconds: float, rate: float, pid: int,
                warmup: float) -> dict[str, object]:
    rng = random.Random(14)
    answers: Counter[tuple[str, int]] = Counter()
    wrong: Counter[str] = Counter()
    samples: list[tuple[float, int]] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        async def one(kind: str, tenant: str, path: str) -> None:
            try:
                r = await client.get(path, headers={"Authorization": f"Bearer {keys[tenant]}"})
            except httpx.HTTPError as exc:
                wrong[f"{kind}: {type(exc).__name__}"] += 1
                return
            answers[(kind, r.status_code)] += 1
            if r.status_code not in EXPECTED[kind]:
                wrong[f"{kind}: {r.status_code}"] += 1

        start = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        sent, next_sample = 0, start
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) * rate) - sent
            for _ in range(due):
                task = asyncio.create_task(one(*pick(rng)))
                pending.add(task)
                task.add_done_callback(pending.discard)
            sent += max(due, 0)
            if now >= next_sample:
                samples.append((now - start, rss_kib(pid)))
                next_sample += 1.0
            await asyncio.sleep(0.005)
        await asyncio.gather(*pending)
        elapsed = time.monotonic() - start
    after = [kib for t, kib in samples if t >= seconds * warmup] or [samples[-1][1]]
    base, end = after[0], after[-1]
    return {"sent": sent, "achieved_rate": round(sent / elapsed, 1),
            "answers": dict(answers), "wrong": dict(wrong),
            "rss_warm_kib": base, "rss_end_kib": end, "rss_peak_kib": max(after),
            "growth": (end - base) / base}


def soak(seconds: float, rate: float, warmup: float) -> dict[str, object]:
    upstream, upstream_port = fake_upstream()
    redis, redis_port = redis_server()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    procs = [upstream, redis]
    try:
        routes, policies = config(upstream_port)
        workdir = Path(tempfile.mkdtemp(prefix="gw-soak-"))
        (workdir / "policies").mkdir()
        for name, text in policies.items():
            (workdir / "policies" / name).write_text(text)
        keys = issue_keys(redis_url)
        gw, port, _ = gateway(routes, {"GATEWAY_REDIS_URL": redis_url,
                                       "GATEWAY_ACCESS_LOG": "false"}, workdir)
        procs.append(gw)
        return asyncio.run(drive(f"http://127.0.0.1:{port}", keys, seconds, rate, gw.pid,
                                 warmup))
    finally:
        stop(*reversed(procs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run")
    args = parser.parse_args()
    result = soak(args.minutes * 60, args.rate, args.warmup)
    for key, value in result.items():
        print(f"{key}: {value}")
    ok = not result["wrong"] and float(result["growth"]) < MAX_GROWTH  # type: ignore[arg-type]
    print(f"soak {'passed' if ok else 'FAILED'}: RSS growth after warm-up "
          f"{float(result['growth']) * 100:.2f} % (limit {MAX_GROWTH * 100:.0f} %), "  # type: ignore[arg-type]
          f"{sum(result['wrong'].values())} wrong answers")  # type: ignore[attr-defined]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
