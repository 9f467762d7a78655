"""Semantic cache: the latency of a miss, an exact hit and a semantic hit, through a real
gateway in front of a real embeddings service.

    python bench/bench_semantic_cache.py [--requests 100] [--redis]

Starts `python -m ml_services.embed` and the fake upstream on core 1, `gateway serve`
(one worker) on core 0 with a public route cached with `semantic: {threshold: 0.92}`
(memory store, or a throwaway redis-server with --redis). One client sends requests one
at a time (latency, not throughput): first N distinct texts (misses: embedding + upstream
+ store), then the same texts again (exact hits: no embedding), then paraphrases of them
(lower-cased, "please" appended: semantic hits: one embedding call + vector search).
The texts are the 100 subject x predicate sentences of bench_ml_services.
Prints p50/p90/p99 per kind and how many paraphrases hit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ml_services import PREDICATES, SUBJECTS
from harness import fake_upstream, free_port, gateway, redis_server, start, stop


def quantiles(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49] * 1000:6.2f} ms  p90 {q[89] * 1000:6.2f} ms  p99 {q[98] * 1000:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100, help="texts per phase (<= 100)")
    parser.add_argument("--redis", action="store_true", help="the Redis store")
    args = parser.parse_args()
    procs = []
    try:
        upstream, upstream_port = fake_upstream()
        procs.append(upstream)
        embed_port = free_port()
        procs.append(start([sys.executable, "-m", "ml_services.embed", "--port",
                            str(embed_port)], "1"))
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{embed_port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the embeddings service did not get ready")
            time.sleep(0.2)
        env = {}
        if args.redis:
            redis, redis_port = redis_server()
            procs.append(redis)
            env["GATEWAY_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        routes = f"""version: 1
upstreams:
  main: {{targets: [{{url: "http://127.0.0.1:{upstream_port}"}}]}}
  embed: {{targets: [{{url: "http://127.0.0.1:{embed_port}"}}]}}
routes:
  - name: ask
    match: {{path: /ask}}
    upstream: main
    rewrite: /
    public: true
    cache: {{ttl: 600, semantic: {{threshold: 0.92}}}}
"""
        gw, port, _ = gateway(routes, env)
        procs.append(gw)
        texts = [f"{s} {p}" for p in PREDICATES for s in SUBJECTS][:args.requests]
        phases = {"miss": texts, "exact hit": texts,
                  "semantic hit": [t.lower().rstrip("!.") + " please" for t in texts]}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            print(f"store={'redis' if args.redis else 'memory'}, {args.requests} texts per "
                  f"phase, one request at a time")
            for name, phase in phases.items():
                seconds, statuses = [], []
                for text in phase:
                    started = time.perf_counter()
                    r = client.post("/ask", json={"text": text})
                    seconds.append(time.perf_counter() - started)
                    statuses.append(r.headers.get("x-cache", "?"))
                counts = {s: statuses.count(s) for s in sorted(set(statuses))}
                print(f"  {name:<13} {quantiles(seconds)}   X-Cache {counts}")
    finally:
        stop(*procs)


if __name__ == "__main__":
    main()
