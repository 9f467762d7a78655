"""The gateway's core benchmark: the path tenants use, beside a direct baseline.

    python bench/bench_gateway.py [--seconds 5] [--rounds 3]
    python bench/bench_gateway.py --observability-cost | --soak [--seconds S] [--rounds N]

Starts a fast fake upstream and `gateway serve` (one worker, metrics and the JSON access
log on, as deployed) pinned to one core, and drives with wrk from the other core, at
concurrency 1 and 64, these cases in alternating rounds (the order flips every round):

  direct              wrk straight at the fake upstream: the baseline, in the same run
  public route        a `public: true` route: no authentication, no limit
  key + tier limit    what a tenant's request takes: API key (created with `gateway keys
                      create --scopes predict`), the route's scope, the tenant's tier limit
                      and in-flight cap in memory, metrics and access log
  ... (Redis)         the same with limits, slots and keys in a Redis of the bench's own
                      (what replicas share)
  key + cache hit     the tenant's path on a route with `cache:`: every request but the
                      first is answered from the (memory) cache, limits still charged

It prints every run (req/s, p50, p99, gateway CPU per request), then per case the
medians: c=1 added p50 over direct, c=64 req/s and p99, and how the tenant's path stands
against the performance targets (README, Performance). `CASES` and `SETUPS` are the
lists to extend (a case names the gateway setup it runs on: settings and its own
start-up, e.g. a Redis). Needs `wrk` (apt-get install wrk) and `taskset` (util-linux).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    GATEWAY_SERVE,
    ROOT,
    Result,
    fake_upstream,
    gateway,
    redis_server,
    rss_kib,
    stop,
    wrk,
)

# The public route alone: also what --observability-cost, --soak and
# bench_instructions.py measure.
ROUTES = """\
version: 1
upstreams:
  fake: {targets: [{url: "http://127.0.0.1:%d"}]}
routes:
  - name: bench
    match: {path: /v1/bench, methods: [GET, POST]}
    upstream: fake
    rewrite: /predict
    public: true
"""
TENANT_ROUTES = ROUTES + """\
  - name: predict
    match: {path: /v1/predict, methods: [POST]}
    upstream: fake
    rewrite: /predict
    scopes: [predict]
  - name: predict-cached
    match: {path: /v1/predict-cached, methods: [POST]}
    upstream: fake
    rewrite: /predict
    scopes: [predict]
    cache: {ttl: 3600}
"""
# Never refuses during a run: the figures are the cost of checking and counting.
TIERS = ('version: 1\ntiers:\n  bench: {rate: "100000000/hour", max_in_flight: 10000}\n')
TENANTS = "version: 1\ntenants:\n  acme: {tier: bench}\n"
BODY = '{"text": "I love this product, it works great"}'
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Setup:
    """One gateway process: its settings and how to prepare it (keys, stores...)."""

    env: dict[str, str] = field(default_factory=dict)
    redis: bool = False  # start a Redis for it (GATEWAY_REDIS_URL)


@dataclass(frozen=True)
class Case:
    name: str
    setup: str | None  # a key of SETUPS; None: the direct baseline
    path: str
    tenant: str | None = None  # send this tenant's API key


SETUPS = {"memory": Setup(), "redis": Setup(redis=True)}
TENANT_CASE = "key + tier limit (memory)"
CASES = [
    Case("direct", None, "/predict"),
    Case("public route", "memory", "/v1/bench"),
    Case(TENANT_CASE, "memory", "/v1/predict", tenant="acme"),
    Case("key + tier limit (Redis)", "redis", "/v1/predict", tenant="acme"),
    Case("key + cache hit (memory)", "memory", "/v1/predict-cached", tenant="acme"),
]
# What the tenant's path should reach (README, Performance).
TARGET_RPS, TARGET_P99_MS, TARGET_ADDED_MS, TARGET_REDIS_SHARE = 8000, 15.0, 0.2, 0.8


def start_setup(name: str, up_port: int, redis_url: str | None = None,
                server: list[str] = GATEWAY_SERVE
                ) -> tuple[subprocess.Popen[bytes], int, dict[str, str]]:
    """The gateway of one setup, and the Authorization header of its tenant."""
    workdir = Path(tempfile.mkdtemp(prefix=f"gw-bench-{name}-"))
    (workdir / "policies").mkdir()
    (workdir / "policies" / "tiers.yaml").write_text(TIERS)
    (workdir / "policies" / "tenants.yaml").write_text(TENANTS)
    (workdir / "routes.yaml").write_text(TENANT_ROUTES % up_port)
    env = {"GATEWAY_DATA_DIR": str(workdir), "GATEWAY_ROUTES_FILE": str(workdir / "routes.yaml"),
           "GATEWAY_POLICIES_DIR": str(workdir / "policies"), **SETUPS[name].env}
    if redis_url is not None:
        env["GATEWAY_REDIS_URL"] = redis_url
    # The key first, through the real CLI and store: the gateway loads it at start-up.
    out = subprocess.run([sys.executable, "-m", "gateway", "keys", "create", "--tenant",
                          "acme", "--scopes", "predict"], env={**os.environ, **env}, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    auth = {"Authorization": f"Bearer {out.splitlines()[0].strip()}"}
    proc, port, _ = gateway(TENANT_ROUTES % up_port, env, workdir, server)
    return proc, port, auth


def full_path(seconds: float, rounds: int) -> None:
    # Other work on this machine moves every figure: say how busy it was.
    load_before = os.getloadavg()[0]
    upstream, up_port = fake_upstream()
    gateways: dict[str, tuple[subprocess.Popen[bytes], int, dict[str, str]]] = {}
    runs: dict[tuple[str, int], list[Result]] = {}
    helpers: list[subprocess.Popen[bytes]] = []
    try:
        for name in sorted({c.setup for c in CASES if c.setup is not None}):
            redis_url = None
            if SETUPS[name].redis:
                redis, redis_port = redis_server()
                helpers.append(redis)
                redis_url = f"redis://127.0.0.1:{redis_port}/0"
            gateways[name] = start_setup(name, up_port, redis_url)
        for _proc, port, auth in gateways.values():
            for path, headers in (("/v1/bench", {}), ("/v1/predict", auth),
                                  ("/v1/predict-cached", auth)):
                wrk("warm-up", f"http://127.0.0.1:{port}{path}", 16, 2, "POST", BODY,
                    {**JSON, **headers})
        for conns in (1, 64):
            for r in range(rounds):
                for case in CASES if r % 2 == 0 else CASES[::-1]:
                    if case.setup is None:
                        url, pid, headers = f"http://127.0.0.1:{up_port}{case.path}", \
                            upstream.pid, {}
                    else:
                        proc, port, auth = gateways[case.setup]
                        url, pid = f"http://127.0.0.1:{port}{case.path}", proc.pid
                        headers = auth if case.tenant else {}
                    res = wrk(case.name, url, conns, seconds, "POST", BODY,
                              {**JSON, **headers}, server_pid=pid)
                    runs.setdefault((case.name, conns), []).append(res)
                    print(res.row(), flush=True)
                    time.sleep(0.3)
    finally:
        stop(*(g[0] for g in gateways.values()), upstream, *helpers)
    _summary(runs, rounds)
    print(f"1-minute load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} cores)")


def _summary(runs: dict[tuple[str, int], list[Result]], rounds: int) -> None:
    def med(name: str, conns: int, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs[(name, conns)])

    direct_p50 = med("direct", 1, "p50_ms")
    print(f"\nmedians of {rounds} alternating rounds; direct c=1 p50 {direct_p50:.3f} ms, "
          f"c=64 {med('direct', 64, 'rps'):.0f} req/s")
    print(f"{'case':<30} {'c=1 added p50':>14} {'c=64 req/s':>11} {'c=64 p99':>10} "
          f"{'CPU/req c=64':>13}")
    for case in CASES:
        if case.setup is None:
            continue
        n = case.name
        print(f"{n:<30} {med(n, 1, 'p50_ms') - direct_p50:>11.3f} ms "
              f"{med(n, 64, 'rps'):>11.0f} {med(n, 64, 'p99_ms'):>7.2f} ms "
              f"{med(n, 64, 'cpu_us'):>9.1f} us")
    errors = sum(r.errors for rs in runs.values() for r in rs)
    print(f"errors (non-2xx and socket): {errors}")
    rps, p99 = med(TENANT_CASE, 64, "rps"), med(TENANT_CASE, 64, "p99_ms")
    added = med(TENANT_CASE, 1, "p50_ms") - direct_p50
    redis_share = med("key + tier limit (Redis)", 64, "rps") / rps

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"
    print(f"\ntargets for {TENANT_CASE}:\n"
          f"  c=64 >= {TARGET_RPS} req/s: {rps:.0f} ({verdict(rps >= TARGET_RPS)})\n"
          f"  c=64 p99 <= {TARGET_P99_MS} ms: {p99:.2f} ms ({verdict(p99 <= TARGET_P99_MS)})\n"
          f"  c=1 added p50 <= {TARGET_ADDED_MS} ms: {added:.3f} ms "
          f"({verdict(added <= TARGET_ADDED_MS)})\n"
          f"  Redis within 20 %: {redis_share:.0%} of memory's req/s "
          f"({verdict(redis_share >= TARGET_REDIS_SHARE)})")


OFF = {"GATEWAY_METRICS": "false", "GATEWAY_ACCESS_LOG": "false"}


def observability_cost(seconds: float, rounds: int) -> None:
    """c=64 with metrics and access log on, then off, alternating, `rounds` times each.

    This machine's speed drifts by tens of percent within minutes, so one pair proves
    little: the medians of several alternating runs are compared.
    """
    upstream, up_port = fake_upstream()
    rates: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for _ in range(rounds):
            for label, env in (("on", {}), ("off", OFF)):
                gw, gw_port, _ = gateway(ROUTES % up_port, env)
                try:
                    url = f"http://127.0.0.1:{gw_port}/v1/bench"
                    wrk("warm-up", url, 16, 2, "POST", BODY)
                    res = wrk(f"metrics+access log {label}", url, 64, seconds, "POST", BODY,
                              {"Content-Type": "application/json"}, server_pid=gw.pid)
                    rates[label].append(res.rps)
                    cpu[label].append(res.cpu_us)
                    print(res.row(), flush=True)
                finally:
                    stop(gw)
    finally:
        stop(upstream)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    cpu_on, cpu_off = statistics.median(cpu["on"]), statistics.median(cpu["off"])
    print(f"\nmetrics + access log cost at c=64 (medians of {rounds} runs each): "
          f"{100 * (1 - on / off):.1f} % of throughput ({on:.0f} vs {off:.0f} req/s), "
          f"{cpu_on - cpu_off:.1f} us CPU per request ({cpu_on:.1f} vs {cpu_off:.1f})")


def soak(seconds: float, rounds: int) -> None:
    """c=64 for `rounds` runs of `seconds` in one gateway, its memory after each."""
    upstream, up_port = fake_upstream()
    gw, gw_port, _ = gateway(ROUTES % up_port)
    try:
        url = f"http://127.0.0.1:{gw_port}/v1/bench"
        wrk("warm-up", url, 16, 2, "POST", BODY)
        print(f"after warm-up: RSS {rss_kib(gw.pid) / 1024:.1f} MiB", flush=True)
        total = 0
        for _ in range(rounds):
            res = wrk("soak", url, 64, seconds, "POST", BODY,
                      {"Content-Type": "application/json"})
            total += res.requests
            print(f"after {total:>8} requests: RSS {rss_kib(gw.pid) / 1024:.1f} MiB "
                  f"({res.rps:.0f} req/s, {res.errors} errors)", flush=True)
    finally:
        stop(gw, upstream)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds per case (the medians count); "
                             "runs for --soak")
    parser.add_argument("--observability-cost", action="store_true",
                        help="only measure what metrics and the access log cost at c=64")
    parser.add_argument("--soak", action="store_true",
                        help="only watch the gateway's memory over --rounds runs at c=64")
    args = parser.parse_args()
    if args.soak:
        soak(args.seconds, args.rounds)
    elif args.observability_cost:
        observability_cost(args.seconds, args.rounds)
    else:
        full_path(args.seconds, args.rounds)


if __name__ == "__main__":
    main()
