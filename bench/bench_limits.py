"""Rate limiting and cache benchmarks: what limits and a cache hit cost at c=1 and c=64.

    python bench/bench_limits.py [--seconds 5] [--rounds 3]

Cases, one gateway worker pinned to its core, wrk and the fake upstream on the other:
  - c=1: no limits vs rate limiting on memory vs on Redis (target: Redis adds <= 0.5 ms p50),
         then the same with an in-flight cap too (taken in the same Redis call; releasing
         it is one more, after the answer)
  - c=1, then Redis is stopped: the same with the store down (fail-open, breaker open);
         requests during an outage must not get slower by more than a few milliseconds
  - c=64: proxied miss (route without cache) vs memory cache hit (target: hit >= 2x faster)
Each gateway runs its cases alternately, `--rounds` times; the medians are compared.
Rows also show the gateway process's CPU time per request (all its threads): a worker
that is the bottleneck serves 1 / that, and it drifts less with this machine's speed.

Every case is the plain `gateway serve`, and every request carries a real API key of its
tenant (created with `gateway keys create` before the gateway starts, in the credentials
file or in Redis like the counters): the baseline pays the same authentication as the
limited cases, so the differences are the cost of limiting and caching alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    GATEWAY_CORE,
    ROOT,
    Result,
    fake_upstream,
    free_port,
    redis_server,
    start,
    stop,
    wait_port,
    wrk,
)

ROUTES = """\
version: 1
upstreams:
  fake: {targets: [{url: "http://127.0.0.1:%d"}]}
routes:
  - name: plain
    match: {path: /v1/plain, methods: [POST]}
    upstream: fake
    rewrite: /predict
  - name: cached
    match: {path: /v1/cached, methods: [POST]}
    upstream: fake
    rewrite: /predict
    cache: {ttl: 3600}
"""
# Large enough never to refuse during a run: the figures are the cost of counting.
TIERS = ('version: 1\ntiers:\n  bench: {rate: "100000000/hour"}\n'
         '  capped: {rate: "100000000/hour", max_in_flight: 10000}\n')
TENANTS = "version: 1\ntenants:\n  limited: {tier: bench}\n  capped: {tier: capped}\n  free: {}\n"
BODY = '{"text": "I love this product, it works great"}'


def gateway(up_port: int, redis_url: str | None
            ) -> tuple[subprocess.Popen[bytes], str, dict[str, dict[str, str]]]:
    """`gateway serve` over a fresh config; also the Authorization header per tenant."""
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-limits-"))
    (workdir / "routes.yaml").write_text(ROUTES % up_port)
    (workdir / "policies").mkdir()
    (workdir / "policies" / "tiers.yaml").write_text(TIERS)
    (workdir / "policies" / "tenants.yaml").write_text(TENANTS)
    port = free_port()
    env = {"GATEWAY_PORT": str(port), "GATEWAY_ROUTES_FILE": str(workdir / "routes.yaml"),
           "GATEWAY_POLICIES_DIR": str(workdir / "policies"), "GATEWAY_DATA_DIR": str(workdir),
           "GATEWAY_LOG_FORMAT": "json", "GATEWAY_ACCESS_LOG": "false"}
    if redis_url:
        env["GATEWAY_REDIS_URL"] = redis_url
        # The outage case runs longer than the default staleness of the key snapshot.
        env["GATEWAY_KEY_STORE_MAX_STALENESS"] = "3600"
    # Keys first, through the real CLI and store: the gateway loads them at startup.
    auth = {}
    for tenant in ("limited", "capped", "free"):
        out = subprocess.run([sys.executable, "-m", "gateway", "keys", "create",
                              "--tenant", tenant], env={**os.environ, **env}, cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        auth[tenant] = {"Authorization": f"Bearer {out.splitlines()[0].strip()}"}
    proc = start([sys.executable, "-m", "gateway", "serve"], GATEWAY_CORE, env,
                 log=workdir / "gateway.log")
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}", auth


def run(name: str, url: str, conns: int, seconds: float, auth: dict[str, str],
        pid: int) -> Result:
    res = wrk(name, url, conns, seconds, "POST", BODY,
              {"Content-Type": "application/json", **auth}, server_pid=pid)
    print(res.row(), flush=True)
    time.sleep(0.3)
    return res


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3,
                        help="each case runs this many times, alternating; medians count")
    args = parser.parse_args()
    s, rounds = args.seconds, args.rounds
    upstream, up_port = fake_upstream()
    redis, redis_port = redis_server()
    # This machine's speed drifts by tens of percent within minutes: every comparison is
    # between cases run alternately in the same gateway, and medians of the rounds.
    runs: dict[str, list[Result]] = {}
    try:
        for store, redis_url in (("memory", None), ("redis", f"redis://127.0.0.1:{redis_port}")):
            gw, base, auth = gateway(up_port, redis_url)
            try:
                for tenant, headers in auth.items():  # each key works, and a warm-up
                    check = wrk(f"warm-up {tenant}", base + "/v1/plain", 8, 1, "POST", BODY,
                                {"Content-Type": "application/json", **headers})
                    if check.errors:
                        sys.exit(f"warm-up for {tenant}: {check.errors} errors (non-2xx?)")
                cases = [(f"off/{store}", "no limits, c=1", "/v1/plain", 1, "free"),
                         (store, f"rate limited ({store}), c=1", "/v1/plain", 1, "limited"),
                         (store + "+cap", f"rate + in-flight cap ({store}), c=1",
                          "/v1/plain", 1, "capped")]
                if store == "memory":
                    cases += [("miss", "proxied (no cache), c=64", "/v1/plain", 64, "free"),
                              ("hit", "cache hit (memory), c=64", "/v1/cached", 64, "free")]
                for _ in range(rounds):
                    for key, name, path, conns, tenant in cases:
                        runs.setdefault(key, []).append(
                            run(name, base + path, conns, s, auth[tenant], gw.pid))
                if store == "redis":  # then Redis dies: fail-open, the breaker open
                    stop(redis)
                    time.sleep(0.5)
                    run("warm-up, Redis down", base + "/v1/plain", 1, 1, auth["limited"],
                        gw.pid)  # the first calls fail and open the breaker
                    for _ in range(rounds):
                        for key, name, tenant in (("down/off", "no limits, Redis down",
                                                   "free"),
                                                  ("down", "rate limited, Redis down",
                                                   "limited")):
                            runs.setdefault(key, []).append(
                                run(name, base + "/v1/plain", 1, s, auth[tenant], gw.pid))
            finally:
                stop(gw)
    finally:
        stop(upstream, redis)

    def median(key: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[key])

    print(f"\nmedians of {rounds} alternating rounds:")
    for store in ("memory", "redis"):
        for case in (store, store + "+cap"):
            added = median(case, "p50_ms") - median(f"off/{store}", "p50_ms")
            print(f"{case}: adds {added:.3f} ms p50 at c=1 "
                  f"(target for rate limiting on redis: <= 0.5 ms)")
    down = median("down", "p50_ms") - median("down/off", "p50_ms")
    normal = median("redis", "p50_ms") - median("off/redis", "p50_ms")
    errors = sum(r.errors for r in runs["down"])
    print(f"redis down (fail-open): rate-limited requests add {down:.3f} ms p50 at c=1 "
          f"over no limits, against {normal:.3f} ms with Redis up; {errors} errors")
    ratio = median("hit", "rps") / median("miss", "rps")
    faster = median("miss", "p50_ms") / median("hit", "p50_ms")
    cheaper = median("miss", "cpu_us") / median("hit", "cpu_us")
    print(f"cache hit vs proxied miss at c=64: {ratio:.2f}x throughput, p50 {faster:.2f}x "
          f"faster (target >= 2x); the gateway's CPU per request {cheaper:.2f}x less "
          f"({median('hit', 'cpu_us'):.0f} vs {median('miss', 'cpu_us'):.0f} us)")
    # Each round's hit ran right after its miss, in the same phase of the machine.
    paired = [h.rps / m.rps for h, m in zip(runs["hit"], runs["miss"], strict=True)]
    print(f"  per round: {', '.join(f'{r:.2f}x' for r in paired)} "
          f"(median {statistics.median(paired):.2f}x)")


if __name__ == "__main__":
    main()
