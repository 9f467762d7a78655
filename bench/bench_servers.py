"""The gateway under other ASGI servers: does a faster server front get the tenant's path
closer to its targets? Chosen by numbers, in one run, beside the same direct baseline.

    python bench/bench_servers.py [--seconds 5] [--rounds 3] [--server NAME ...]

Each server runs two apps, one process each, pinned to the gateway core (wrk and the fake
upstream on the other, as in bench_gateway.py):

  floor         a trivial ASGI app (bench/floor_app.py): the server's own cost
  tenant path   the gateway with bench_gateway.py's memory setup (API key, scope, tier
                limit, in-flight cap, metrics, JSON access log), at POST /v1/predict

Servers (one worker, one event loop on uvloop where the server can use it):

  gateway serve       what ships: uvicorn with the gateway's own protocol and request
                      cycle (gateway/http_protocol.py, http_cycle.py)
  uvicorn             stock uvicorn, httptools and uvloop: what the own protocol replaced
  granian             Rust (hyper/tokio) HTTP, ASGI interface, default multi-thread runtime
  granian st          the same with its single-thread runtime
  socketify           uWebSockets (C++) through cffi, ASGI interface

It prints every run, then per app and server the medians (c=1 p50, c=64 req/s, p99 and
CPU per request, children included: granian serves from a worker process) and the
c=64 req/s as a share of `gateway serve`'s. A server that dies under the load is reported
as such and left out of later rounds. Needs wrk; `pip install granian socketify` for
those (the `bench` extra pins the versions measured); a server not installed is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_gateway import BODY, JSON, start_setup
from bench_server_floor import TRIVIAL_SERVER
from harness import (
    GATEWAY_CORE,
    GATEWAY_SERVE,
    Result,
    fake_upstream,
    free_port,
    start,
    stop,
    wait_port,
    wrk,
)

PY = sys.executable
TARGETS = {"floor": "bench.floor_app:app", "tenant path": "bench.served_app:app"}
GRANIAN = [PY, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port",
           "{port}", "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop",
           "--no-ws", "--http", "1", "--log-level", "warning", "--no-access-log"]
# name -> (module it needs, argv with "{port}" and "{app}")
SERVERS: dict[str, tuple[str, list[str]]] = {
    "gateway serve": ("uvicorn", []),  # its own argv per app: see server_argv
    "uvicorn": ("uvicorn", [PY, "-m", "uvicorn", "{app}", "--host", "127.0.0.1", "--port",
                            "{port}", "--loop", "uvloop", "--http", "httptools",
                            "--no-access-log", "--no-server-header", "--no-proxy-headers",
                            "--log-level", "warning"]),
    "granian": ("granian", [*GRANIAN, "{app}"]),
    "granian st": ("granian", [*GRANIAN, "--runtime-mode", "st", "{app}"]),
    "socketify": ("socketify", [PY, "-m", "socketify", "{app}", "--host", "127.0.0.1",
                                "--port", "{port}", "--workers", "1", "--ws", "none",
                                "--interface", "asgi", "--disable-listen-log", "true"]),
}
APPS = ("floor", "tenant path")


def server_argv(server: str, app: str) -> list[str]:
    if server == "gateway serve":
        # The floor under the same server as `gateway serve` (bench_server_floor.py's).
        return GATEWAY_SERVE if app == "tenant path" else [PY, "-c", TRIVIAL_SERVER, "{port}"]
    return [a.replace("{app}", TARGETS[app]) for a in SERVERS[server][1]]


class Served:
    """One (server, app) process and how to ask it."""

    def __init__(self, server: str, app: str, up_port: int) -> None:
        argv = server_argv(server, app)
        self.headers = dict(JSON)
        self.path = "/v1/predict"
        if app == "tenant path":
            self.proc, self.port, auth = start_setup("memory", up_port, server=argv)
            self.headers.update(auth)
        else:
            self.port = free_port()
            log = Path(tempfile.mkdtemp(prefix="gw-bench-floor-")) / "server.log"
            self.proc = start([a.replace("{port}", str(self.port)) for a in argv],
                              GATEWAY_CORE, log=log)
            wait_port(self.port, timeout=30)
        self.url = f"http://127.0.0.1:{self.port}{self.path}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, name: str, connections: int, seconds: float) -> Result | None:
        """wrk's figures, or None when the server is gone (wrk fails without a peer)."""
        try:
            return wrk(name, self.url, connections, seconds, "POST", BODY, self.headers,
                       server_pid=self.proc.pid)
        except (subprocess.CalledProcessError, FileNotFoundError):  # no /proc entry left
            if self.alive():
                raise
            return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", action="append", choices=list(SERVERS),
                        help="servers to compare (default: every one installed)")
    args = parser.parse_args()
    servers = [s for s in args.server or SERVERS if s == "gateway serve" or
               importlib.util.find_spec(SERVERS[s][0]) is not None]
    for s in set(args.server or SERVERS) - set(servers):
        print(f"skipped {s}: not installed (pip install {SERVERS[s][0]})")
    if "gateway serve" not in servers:
        servers.insert(0, "gateway serve")  # the reference every share is of
    upstream, up_port = fake_upstream()
    served: dict[tuple[str, str], Served] = {}
    runs: dict[tuple[str, str, int], list[Result]] = {}
    dead: set[tuple[str, str]] = set()
    direct: dict[int, list[Result]] = {}
    try:
        for server in servers:
            for app in APPS:
                served[(server, app)] = Served(server, app, up_port)
        for key, s in served.items():
            if s.run("warm-up", 16, 2) is None:
                dead.add(key)
                print(f"{key[1]}: {key[0]} died in the warm-up (c=16)", flush=True)
        for conns in (1, 64):
            for r in range(args.rounds):
                res = wrk("direct", f"http://127.0.0.1:{up_port}/predict", conns,
                          args.seconds, "POST", BODY, JSON, server_pid=upstream.pid)
                direct.setdefault(conns, []).append(res)
                print(res.row(), flush=True)
                order = list(served.items())
                for key, s in order if r % 2 == 0 else order[::-1]:
                    if key in dead:
                        continue
                    res = s.run(f"{key[1]}: {key[0]}", conns, args.seconds)
                    if res is None or not s.alive():
                        dead.add(key)
                        print(f"{key[1]}: {key[0]} died under c={conns} "
                              f"(exit {s.proc.poll()}); left out from here", flush=True)
                        continue
                    runs.setdefault((*key, conns), []).append(res)
                    print(res.row(), flush=True)
                    time.sleep(0.3)
    finally:
        stop(*(s.proc for s in served.values() if s.alive()), upstream)
    summary(servers, runs, direct, dead, args.rounds)


def summary(servers: list[str], runs: dict[tuple[str, str, int], list[Result]],
            direct: dict[int, list[Result]], dead: set[tuple[str, str]], rounds: int) -> None:
    def med(server: str, app: str, conns: int, attr: str) -> float | None:
        rs = runs.get((server, app, conns))
        return statistics.median(getattr(r, attr) for r in rs) if rs else None

    d1 = statistics.median(r.p50_ms for r in direct[1])
    d64 = statistics.median(r.rps for r in direct[64])
    print(f"\nmedians of {rounds} alternating rounds; direct c=1 p50 {d1:.3f} ms, "
          f"c=64 {d64:.0f} req/s")
    print(f"{'app: server':<28} {'c=1 p50':>9} {'c=64 req/s':>11} {'share':>6} "
          f"{'c=64 p99':>10} {'CPU/req c=64':>13}  errors")
    for app in APPS:
        reference = med("gateway serve", app, 64, "rps")
        for server in servers:
            name = f"{app}: {server}"
            rps = med(server, app, 64, "rps")
            if rps is None:
                print(f"{name:<28} " + ("died under load" if (server, app) in dead
                                        else "no c=64 runs"))
                continue
            p50 = med(server, app, 1, "p50_ms")
            errors = sum(r.errors for c in (1, 64) for r in runs.get((server, app, c), []))
            share = f"{rps / reference:.0%}" if reference else "-"
            died = "  (died later)" if (server, app) in dead else ""
            print(f"{name:<28} {p50 if p50 is not None else float('nan'):>6.3f} ms "
                  f"{rps:>11.0f} {share:>6} {med(server, app, 64, 'p99_ms'):>7.2f} ms "
                  f"{med(server, app, 64, 'cpu_us'):>9.1f} us  {errors}{died}")


if __name__ == "__main__":
    main()
