"""The gateway's core benchmark: direct to a fast upstream vs through the gateway.

    python bench/bench_gateway.py [--seconds 10] [--observability-cost | --soak] [--rounds 5]

Starts a fast fake upstream and the gateway (one worker, access log and metrics on),
drives both with wrk at concurrency 1 and 64 in one run, and prints req/s, p50, p99,
the ratios gateway/direct, the added p50 at concurrency 1, and the gateway's memory
before and after. Needs `wrk` (apt-get install wrk) and `taskset` (util-linux).
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness import Result, fake_upstream, gateway, rss_kib, stop, wrk

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
BODY = '{"text": "I love this product, it works great"}'


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
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--observability-cost", action="store_true",
                        help="only measure what metrics and the access log cost at c=64")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating on/off runs for --observability-cost; runs for --soak")
    parser.add_argument("--soak", action="store_true",
                        help="only watch the gateway's memory over --rounds runs at c=64")
    args = parser.parse_args()
    if args.soak:
        soak(args.seconds, args.rounds)
        return
    if args.observability_cost:
        observability_cost(args.seconds, args.rounds)
        return
    upstream, up_port = fake_upstream()
    gw, gw_port, workdir = gateway(ROUTES % up_port)
    results: dict[tuple[str, int], Result] = {}
    try:
        wrk("warm-up", f"http://127.0.0.1:{gw_port}/v1/bench", 16, 2, "POST", BODY)
        rss_before = rss_kib(gw.pid)
        for conns in (1, 64):
            for name, url in (("direct", f"http://127.0.0.1:{up_port}/predict"),
                              ("gateway", f"http://127.0.0.1:{gw_port}/v1/bench")):
                res = wrk(name, url, conns, args.seconds, "POST", BODY,
                          {"Content-Type": "application/json"},
                          server_pid=gw.pid if name == "gateway" else upstream.pid)
                results[(name, conns)] = res
                print(res.row(), flush=True)
                time.sleep(0.5)
        rss_after = rss_kib(gw.pid)
    finally:
        stop(gw, upstream)
    print()
    for conns in (1, 64):
        d, g = results[("direct", conns)], results[("gateway", conns)]
        print(f"c={conns:<3} gateway/direct: throughput {g.rps / d.rps:.2f}x, "
              f"p50 {g.p50_ms / d.p50_ms:.2f}x, added p50 {g.p50_ms - d.p50_ms:.3f} ms")
    print(f"gateway RSS: {rss_before / 1024:.1f} MiB after warm-up, "
          f"{rss_after / 1024:.1f} MiB at the end")
    print(f"(logs in {workdir})")


if __name__ == "__main__":
    main()
