"""Which HTTP client belongs on the proxy's hot path: CPU per proxied-style request.

    python bench/compare_clients.py [--requests 20000] [--concurrency 64]

Sends the same small POST (the headers the gateway forwards) to a fast fake upstream
from one process pinned to one core, with the gateway's own transport (HTTP/1.1 on the
event loop, gateway/http1.py), httpx, aiohttp, pyreqwest, pyqwest, rnet and wreq (the
last four Rust reqwest/hyper underneath), and prints requests/s and CPU microseconds per
request (process CPU, so client threads count). Only httpx comes with the gateway; the
others are for comparison: `pip install aiohttp pyreqwest pyqwest rnet wreq`.
`--rounds N` repeats the clients in alternating order, since one round on a shared
machine says little.

Instructions per request, which a loaded machine does not move: run one client under
callgrind at two sizes without warm-up and divide the difference (the upstream is a
child process, not counted):

    valgrind --tool=callgrind python bench/compare_clients.py \
        --clients wreq --warmup 0 --requests 500      # then --requests 2500
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import uvloop
from harness import ROOT, fake_upstream, stop

sys.path.insert(0, str(ROOT))
from gateway.transport import Http1Transport, UpstreamRequest

BODY = b'{"text": "I love this product"}'
HEADERS = [("content-type", "application/json"), ("x-request-id", "abc"),
           ("x-forwarded-for", "127.0.0.1"),
           ("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01")]


WARMUP = 2000


async def measure(name: str, one: Callable[[], Awaitable[int]], n: int, c: int) -> None:
    sem = asyncio.Semaphore(c)

    async def worker() -> None:
        async with sem:
            assert await one() == 200

    await asyncio.gather(*(worker() for _ in range(min(n, WARMUP))))  # warm the pool
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(n)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"{name:<10} {n / wall:>8.0f} req/s   {cpu / n * 1e6:>6.1f} us CPU/request", flush=True)


async def with_httpx(url: str, n: int, c: int) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=512)) as client:
        async def one() -> int:
            r = await client.post(url, content=BODY, headers=HEADERS)
            return r.status_code
        await measure("httpx", one, n // 4, c)  # slow: a quarter of the requests


async def with_gateway(url: str, n: int, c: int) -> None:
    transport = Http1Transport()

    async def one() -> int:
        r = await transport.send(UpstreamRequest("POST", url, HEADERS, BODY, 1.0, 10.0))
        return r.status
    await measure("gateway", one, n, c)
    await transport.aclose()


async def with_aiohttp(url: str, n: int, c: int) -> None:
    import aiohttp
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512),
                                     auto_decompress=False) as session:
        async def one() -> int:
            async with session.post(url, data=BODY, headers=HEADERS) as r:
                await r.read()
                return r.status
        await measure("aiohttp", one, n, c)


async def with_pyreqwest(url: str, n: int, c: int) -> None:
    from pyreqwest.client import ClientBuilder
    client = (ClientBuilder().follow_redirects(False).gzip(False)
              .connect_timeout(timedelta(seconds=1)).build())
    async with client:
        async def one() -> int:
            req = client.post(url).headers(HEADERS).body_bytes(BODY).build_streamed()
            async with req as r:
                await r.bytes()
                return r.status
        await measure("pyreqwest", one, n, c)


async def with_pyqwest(url: str, n: int, c: int) -> None:
    import pyqwest
    transport = pyqwest.HTTPTransport(connect_timeout=1, follow_redirects=False,
                                      enable_gzip=False, enable_brotli=False,
                                      enable_zstd=False, enable_otel=False)
    client = pyqwest.Client(transport)

    async def one() -> int:
        async with client.stream("POST", url, HEADERS, BODY) as r:
            async for _ in r.content:
                pass
            return r.status
    await measure("pyqwest", one, n, c)
    await transport.aclose()


async def with_rnet(url: str, n: int, c: int) -> None:
    import rnet
    client = rnet.Client(allow_redirects=False, gzip=False, brotli=False, zstd=False,
                         deflate=False)

    async def one() -> int:
        r = await client.post(url, headers=dict(HEADERS), body=BODY)
        await r.bytes()
        return int(r.status)
    await measure("rnet", one, n, c)


async def with_wreq(url: str, n: int, c: int) -> None:
    import wreq
    client = wreq.Client()

    async def one() -> int:
        r = await client.post(url, headers=dict(HEADERS), body=BODY)
        await r.bytes()
        return r.status.as_int()
    await measure("wreq", one, n, c)


CLIENTS = {"gateway": with_gateway, "httpx": with_httpx, "aiohttp": with_aiohttp,
           "pyreqwest": with_pyreqwest, "pyqwest": with_pyqwest, "rnet": with_rnet,
           "wreq": with_wreq}


def main() -> None:
    global WARMUP
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=WARMUP, help="requests before timing")
    args = parser.parse_args()
    WARMUP = args.warmup
    runs = [CLIENTS[name] for name in args.clients.split(",")]
    proc, port = fake_upstream()
    url = f"http://127.0.0.1:{port}/predict"
    try:
        for i in range(args.rounds):
            for run in (runs if i % 2 == 0 else runs[::-1]):
                try:
                    uvloop.run(run(url, args.requests, args.concurrency))
                except ImportError as exc:
                    print(f"{run.__name__[5:]:<10} not installed ({exc.name})", flush=True)
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
