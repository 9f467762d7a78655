"""Rate limiting and cache benchmarks (issue 5's targets).

    python bench/bench_limits.py [--seconds 10]

Cases, one gateway worker pinned to its core, wrk and the fake upstream on the other:
  - c=1: no limits vs rate limiting on memory vs on Redis (target: Redis adds <= 0.5 ms p50),
         then the same with an in-flight cap too (one more Redis call, plus the release)
  - c=64: proxied miss (route without cache) vs memory cache hit (target: hit >= 2x faster)

Every case is the plain `gateway serve`, and every request carries a real API key of its
tenant (created with `gateway keys create` before the gateway starts, in the credentials
file or in Redis like the counters): the baseline pays the same authentication as the
limited cases, so the differences are the cost of limiting and caching alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (
    GATEWAY_CORE,
    LOAD_CORE,
    ROOT,
    Result,
    fake_upstream,
    free_port,
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


def run(name: str, url: str, conns: int, seconds: float, auth: dict[str, str]) -> Result:
    res = wrk(name, url, conns, seconds, "POST", BODY,
              {"Content-Type": "application/json", **auth})
    print(res.row(), flush=True)
    time.sleep(0.3)
    return res


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    s = parser.parse_args().seconds
    upstream, up_port = fake_upstream()
    redis_port = free_port()
    redis = start(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly",
                   "no"], LOAD_CORE)
    wait_port(redis_port)
    results: dict[str, Result] = {}
    try:
        for store, redis_url in (("memory", None), ("redis", f"redis://127.0.0.1:{redis_port}")):
            gw, base, auth = gateway(up_port, redis_url)
            try:
                for tenant, headers in auth.items():  # each key works, and a warm-up
                    check = wrk(f"warm-up {tenant}", base + "/v1/plain", 8, 1, "POST", BODY,
                                {"Content-Type": "application/json", **headers})
                    if check.errors:
                        sys.exit(f"warm-up for {tenant}: {check.errors} errors (non-2xx?)")
                if store == "memory":
                    results["off"] = run("no limits, c=1", base + "/v1/plain", 1, s,
                                         auth["free"])
                    results["miss"] = run("proxied (no cache), c=64", base + "/v1/plain", 64, s,
                                          auth["free"])
                    results["hit"] = run("cache hit (memory), c=64", base + "/v1/cached", 64,
                                         s, auth["free"])
                results[store] = run(f"rate limited ({store}), c=1", base + "/v1/plain", 1, s,
                                     auth["limited"])
                results[store + "+cap"] = run(f"rate + in-flight cap ({store}), c=1",
                                              base + "/v1/plain", 1, s, auth["capped"])
            finally:
                stop(gw)
    finally:
        stop(upstream, redis)
    print()
    for case in ("memory", "redis", "memory+cap", "redis+cap"):
        print(f"{case}: adds {results[case].p50_ms - results['off'].p50_ms:.3f} ms p50 at c=1 "
              f"(target for rate limiting on redis: <= 0.5 ms)")
    print(f"cache hit vs proxied miss at c=64: {results['hit'].rps / results['miss'].rps:.2f}x "
          f"throughput, p50 {results['miss'].p50_ms / results['hit'].p50_ms:.2f}x faster "
          f"(target >= 2x)")


if __name__ == "__main__":
    main()
