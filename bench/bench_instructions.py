"""Instructions per proxied request, counted by valgrind's callgrind: a figure that does
not drift with this machine's speed, unlike req/s (which moved by tens of percent
between identical runs a minute apart here).

    python bench/bench_instructions.py [--seconds 8] [--case NAME ...]

Each case starts `gateway serve` (one worker) under callgrind with instrumentation off,
warms it up, switches instrumentation on, counts an idle stretch, then the same length
driven by wrk (c=16) against the fast fake upstream, and divides the difference by the
requests served. All threads count (the Python thread and the HTTP client's Rust
threads). Cases:

  full   metrics and access log on (the default configuration)
  quiet  metrics and access log off: `full` minus `quiet` is what observability costs
  logs   access log only;  metrics   metrics only
  tenant what a tenant's request takes: `full` + an API key, the route's scope check,
         the tier's rate limit and in-flight cap (memory), as bench_gateway.py measures
  tenant-redis  the same with limits, slots and keys in a Redis of the bench's own
  hit    `full`, on a cached route: every request but the first is a memory cache hit
         (what the hit path itself costs; not a throughput prediction against `full`,
         whose sockets and thread wake-ups to the upstream are kernel time, not counted)

Throughput of a CPU-bound server is proportional to 1 / CPU per request, so the ratio
of instruction counts predicts the throughput ratio, without the machine's noise. Only
user-space instructions count: kernel time (sockets, wake-ups) is the same in `full`
and `quiet`, so the predicted cost of observability is, if anything, an overestimate.
Needs valgrind and wrk (apt-get install valgrind wrk). KEEP=1 keeps each case's work dir
(its callgrind dumps, for callgrind_annotate).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_gateway import BODY, TENANTS, TIERS
from bench_gateway import ROUTES as BENCH_ROUTES
from bench_gateway import TENANT_ROUTES as BENCH_TENANT_ROUTES
from harness import fake_upstream, free_port, redis_server, start, stop, wait_port, wrk

CACHED_ROUTE = """\
  - name: cached
    match: {path: /v1/cached, methods: [POST]}
    upstream: fake
    rewrite: /predict
    public: true
    cache: {ttl: 3600}
"""
ROUTES = BENCH_ROUTES + CACHED_ROUTE
TENANT_ROUTES = BENCH_TENANT_ROUTES + CACHED_ROUTE
# case -> (settings, path)
CASES: dict[str, tuple[dict[str, str], str]] = {
    "full": ({}, "/v1/bench"),
    "quiet": ({"GATEWAY_METRICS": "false", "GATEWAY_ACCESS_LOG": "false"}, "/v1/bench"),
    "logs": ({"GATEWAY_METRICS": "false"}, "/v1/bench"),
    "metrics": ({"GATEWAY_ACCESS_LOG": "false"}, "/v1/bench"),
    "hit": ({}, "/v1/cached"),
    "tenant": ({}, "/v1/predict"),  # `full` + API key, scope check, tier limit (memory)
    "tenant-redis": ({}, "/v1/predict"),  # the same on a Redis (GATEWAY_REDIS_URL)
}
TENANT_CASES = {"tenant", "tenant-redis"}
REDIS_CASES = {"tenant-redis"}


def callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def _summary(dump: Path) -> int:
    m = re.search(r"^summary:\s+(\d+)", dump.read_text(errors="replace"), re.M)
    if m is None:
        sys.exit(f"no summary in {dump}")
    return int(m.group(1))


def count_per_request(pid: int, workdir: Path, name: str, url: str, headers: dict[str, str],
                      seconds: float) -> tuple[float, int]:
    """(instructions per request, requests) of the server under callgrind as `pid`,
    writing its dumps in `workdir`: warm up, then an idle stretch and a loaded one of the
    same length, the idle count taken from the loaded."""
    wrk("warm-up", url, 16, 3, "POST", BODY, headers, timeout=30)
    callgrind(pid, "--instr=on")
    # First the same time idle: what the background tasks (log flush, config watch,
    # health checks, metrics fold) cost, to take away from the loaded run, which would
    # otherwise charge them to fewer requests in the slower case.
    callgrind(pid, "--zero")
    time.sleep(seconds)
    callgrind(pid, "--dump")  # callgrind.out.1; dumping also zeroes the counts
    # Generous timeout: under callgrind the server runs ~50x slower.
    res = wrk(name, url, 16, seconds, "POST", BODY, headers, timeout=30)
    callgrind(pid, "--dump")  # callgrind.out.2
    callgrind(pid, "--instr=off")
    idle, loaded = (_summary(workdir / f"callgrind.out.{n}") for n in (1, 2))
    if res.errors or not res.requests:
        sys.exit(f"{name}: {res.errors} failed of {res.requests} requests")
    return (loaded - idle) / res.requests, res.requests


def measure(case: str, up_port: int, seconds: float) -> tuple[float, int]:
    """(instructions per request, requests) for one case."""
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-ir-"))
    tenant = case in TENANT_CASES
    (workdir / "routes.yaml").write_text((TENANT_ROUTES if tenant else ROUTES) % up_port)
    (workdir / "policies").mkdir()
    port = free_port()
    out = workdir / "callgrind.out"
    env = {"GATEWAY_PORT": str(port), "GATEWAY_ROUTES_FILE": str(workdir / "routes.yaml"),
           "GATEWAY_POLICIES_DIR": str(workdir / "policies"), "GATEWAY_DATA_DIR": str(workdir),
           "GATEWAY_LOG_FORMAT": "json", **CASES[case][0]}
    headers = {"Content-Type": "application/json"}
    redis = None
    if case in REDIS_CASES:
        redis, redis_port = redis_server()
        env["GATEWAY_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    if tenant:
        (workdir / "policies" / "tiers.yaml").write_text(TIERS)
        (workdir / "policies" / "tenants.yaml").write_text(TENANTS)
        key = subprocess.run([sys.executable, "-m", "gateway", "keys", "create", "--tenant",
                              "acme", "--scopes", "predict"], env={**os.environ, **env},
                             capture_output=True, text=True, check=True).stdout.split()[0]
        headers["Authorization"] = f"Bearer {key}"
    proc = start(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                  f"--callgrind-out-file={out}", sys.executable, "-m", "gateway", "serve"],
                 "0", env, log=workdir / "gateway.log")
    try:
        wait_port(port, timeout=120)
        return count_per_request(proc.pid, workdir, case,
                                 f"http://127.0.0.1:{port}{CASES[case][1]}", headers, seconds)
    finally:
        stop(proc, *([redis] if redis is not None else []))
        if not os.environ.get("KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print("kept", workdir)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("wrk"):
        sys.exit("needs valgrind and wrk: apt-get install valgrind wrk")
    cases = args.case or ["full", "quiet"]
    upstream, up_port = fake_upstream()
    results: dict[str, float] = {}
    try:
        for case in cases:
            per_request, n = measure(case, up_port, args.seconds)
            results[case] = per_request
            print(f"{case:<8} {per_request / 1000:>9.1f} k instructions per request "
                  f"({n} requests)", flush=True)
    finally:
        stop(upstream)
    if "full" in results and "quiet" in results:
        full, quiet = results["full"], results["quiet"]
        print(f"\nmetrics + access log: {full / quiet - 1:+.1%} instructions per request; "
              f"predicted throughput cost {1 - quiet / full:.1%}")
    if "full" in results and "hit" in results:
        print(f"cache hit: {results['full'] / results['hit']:.2f}x fewer user-space "
              f"instructions than a proxied request (kernel time not counted)")


if __name__ == "__main__":
    main()
