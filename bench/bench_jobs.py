"""Jobs through Redis Streams, end to end: submissions through `gateway serve`, N
`gateway worker` processes, an echo upstream that counts what it answers.

    python bench/bench_jobs.py [--jobs 10000] [--workers 3] [--concurrency 16] [--kill]

It submits --jobs jobs (each body distinct) through the gateway with 64 clients at once,
while the workers run them, and prints:
  - submissions/s (202s through the gateway: key check, rate limit, submit script),
  - jobs/s end to end (first submission to last outcome written),
  - the queue's added latency: p50/p99 from submission to the first start (queue wait)
    and from submission to the outcome (submit to done), from the jobs' own timestamps.
With --kill, one worker is SIGKILLed when a quarter of the jobs are done and started
again; then every job must have succeeded with its own input's answer, and the count of
upstream calls shows how many ran twice (those the killed worker held).

Layout: the gateway on core 0; Redis, the upstream and the workers unpinned (2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, free_port, gateway, redis_server, start, stop, wait_port
from gateway.auth.api_keys import issue_key
from gateway.auth.key_store import RedisKeyStore
from gateway.stores import connect_redis
from gateway.transport import Http1Transport, UpstreamRequest

ROUTES = """version: 1
upstreams:
  echo:
    targets: [{{url: "http://127.0.0.1:{port}"}}]
    circuit_breaker: {{failures: 100000}}
routes:
  - name: work
    match: {{path: /v1/work, methods: [POST]}}
    upstream: echo
    async: {{only: true}}
"""
TENANTS = """version: 1
tenants:
  bench: {tier: roomy}
"""
TIERS = """version: 1
tiers:
  roomy: {rate: "100000000/hour", max_queued_jobs: 1000000}
"""


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


def echo_upstream() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = start([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(port),
                  "--echo"], "0,1")
    wait_port(port)
    return proc, port


def put_key(redis_url: str) -> str:
    key, record = issue_key("bench", name="bench")

    async def put() -> None:
        client = connect_redis(redis_url)
        try:
            await RedisKeyStore(client).put_key(record)
        finally:
            await client.aclose()

    asyncio.run(put())
    return key


def worker(env: dict[str, str], concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    return start([sys.executable, "-m", "gateway", "worker", "--concurrency",
                  str(concurrency)], "0,1", env, log=log)


async def submit(url: str, key: str, n: int, clients: int, rate: float = 0.0
                 ) -> tuple[list[str], float]:
    """Submit n jobs, `clients` at a time (at most `rate` per second when given), with
    the gateway's own upstream transport (httpx's pool collapses under this concurrency
    and would measure itself: README, Performance)."""
    client = Http1Transport()
    headers = [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json")]
    ids: list[str] = [""] * n
    next_i = 0

    async def submitter() -> None:
        nonlocal next_i
        while next_i < n:
            i, next_i = next_i, next_i + 1
            if rate:  # job i leaves at t0 + i / rate
                await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            r = await client.send(UpstreamRequest("POST", url + "/v1/work", headers,
                                                  b'{"n": %d}' % i, 5.0, 30.0))
            body = r.body or b""
            if r.status != 202:
                raise SystemExit(f"submission {i}: {r.status} {body[:200]!r}")
            ids[i] = orjson.loads(body)["id"]

    t0 = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(clients)))
    return ids, time.perf_counter() - t0


def pending(r: redis.Redis) -> int:
    return int(r.zcard("gw:{jobs}:pending:bench"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16, help="executors per worker")
    parser.add_argument("--clients", type=int, default=64, help="submissions at once")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="submissions per second (default: as fast as they go); below "
                             "the workers' capacity the queue wait is the queue's own cost")
    parser.add_argument("--kill", action="store_true",
                        help="SIGKILL a worker a quarter through, start it again")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    rproc, rport = redis_server()
    redis_url = f"redis://127.0.0.1:{rport}/0"
    upstream, up_port = echo_upstream()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        (workdir / "policies").mkdir()
        (workdir / "policies" / "tenants.yaml").write_text(TENANTS)
        (workdir / "policies" / "tiers.yaml").write_text(TIERS)
        key = put_key(redis_url)
        env = {"GATEWAY_REDIS_URL": redis_url, "GATEWAY_ACCESS_LOG": "false",
               "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_JOBS_WORKERS": "0",
               "GATEWAY_JOBS_VISIBILITY_TIMEOUT": "2",
               # On a loaded 2-core machine a reply can sit unread past the 1 s default,
               # which the stores take for an outage (settings.py, store_timeout).
               "GATEWAY_STORE_TIMEOUT": "3",
               "GATEWAY_ROUTES_FILE": str(workdir / "routes.yaml"),
               "GATEWAY_POLICIES_DIR": str(workdir / "policies"),
               "GATEWAY_DATA_DIR": str(workdir)}
        gw, port, _ = gateway(ROUTES.format(port=up_port), env, workdir)
        procs.append(gw)
        time.sleep(1.0)
        workers = [worker({**os.environ, **env}, args.concurrency, workdir / f"w{i}.log")
                   for i in range(args.workers)]
        procs += workers
        time.sleep(3.0)  # the workers import and join the group
        r = redis.Redis.from_url(redis_url)
        url = f"http://127.0.0.1:{port}"
        killed_at = None
        if args.kill:
            kill_after: list[float] = []

            async def with_kill() -> tuple[list[str], float]:
                task = asyncio.ensure_future(submit(url, key, args.jobs, args.clients))
                async with httpx.AsyncClient() as probe:
                    count = f"http://127.0.0.1:{up_port}/count"
                    while (await probe.get(count)).json() < args.jobs // 4:  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                workers[0].kill()  # SIGKILL: its jobs stay pending in the stream
                kill_after.append(time.perf_counter() - t0)
                procs.append(worker({**os.environ, **env}, args.concurrency,
                                    workdir / "w0-again.log"))
                return await task

            t0 = time.perf_counter()
            ids, submit_seconds = asyncio.run(with_kill())
            killed_at = kill_after[0] if kill_after else None
        else:
            t0 = time.perf_counter()
            ids, submit_seconds = asyncio.run(submit(url, key, args.jobs, args.clients,
                                                     args.rate))
        while pending(r):
            time.sleep(0.01)
        total = time.perf_counter() - t0
        calls = httpx.get(f"http://127.0.0.1:{up_port}/count").json()
        pipe = r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(f"gw:{{jobs}}:job:{job_id}", "status", "created", "started", "finished",
                       "attempts", "outcome")
        rows = pipe.execute()
        waits, dones, statuses, retaken, wrong = [], [], {}, 0, 0
        for i, (status, created, started, finished, attempts, outcome) in enumerate(rows):
            statuses[status.decode()] = statuses.get(status.decode(), 0) + 1
            waits.append(float(started) - float(created))
            dones.append(float(finished) - float(created))
            retaken += int(attempts) > 1
            body = base64.b64decode(orjson.loads(outcome)["b"])
            wrong += body != b'{"n": %d}' % i
        print(f"{args.jobs} jobs, {args.workers} workers x {args.concurrency} executors, "
              f"{args.clients} submitting clients"
              + (f" at {args.rate:.0f}/s" if args.rate else "") + ", Redis Streams"
              + (f", one worker SIGKILLed at {killed_at:.1f}s and restarted" if killed_at
                 else ""))
        print(f"  submissions: {args.jobs / submit_seconds:,.0f}/s through the gateway")
        print(f"  end to end:  {args.jobs / total:,.0f} jobs/s ({total:.2f} s for all)")
        print(f"  queue wait (submit -> first start): p50 {_ms(waits, 50):.1f} ms, "
              f"p99 {_ms(waits, 99):.1f} ms")
        print(f"  submit -> done:                     p50 {_ms(dones, 50):.1f} ms, "
              f"p99 {_ms(dones, 99):.1f} ms")
        print(f"  outcomes: {statuses}; answers matching their input: {args.jobs - wrong}")
        print(f"  upstream calls: {calls} ({calls - args.jobs} repeated; {retaken} jobs "
              "started more than once)")
        print(f"  load average: {os.getloadavg()[0]:.1f}")
        if wrong or statuses.get("succeeded") != args.jobs:
            sys.exit("FAILED: not every job succeeded with its own answer")
    finally:
        stop(*procs, upstream, rproc)


if __name__ == "__main__":
    main()
