"""Instructions per request of the server alone: a trivial ASGI app (read the body, answer
33 bytes) under the gateway's own server protocol, counted by callgrind as
bench_instructions.py counts the gateway.

    python bench/bench_server_floor.py [--seconds 8]

What the server and its ASGI round (parsing, the request cycle, its task, the answer
writer, the sockets' user-space side) cost per request whatever the app does: the floor
under every bench_instructions.py case, and the part of a tenant's request that a
leaner app cannot remove. Needs valgrind and wrk (apt-get install valgrind wrk).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench_gateway import JSON
from bench_instructions import count_per_request
from harness import free_port, start, stop, wait_port

# One worker of `gateway serve`'s server (uvicorn with the gateway's protocol, uvloop),
# running an app that does nothing but answer (bench/floor_app.py; started from the
# project's root, so `bench` imports as a namespace package).
TRIVIAL_SERVER = """\
import sys, uvicorn
from bench.floor_app import app
from gateway.http_protocol import HeaderLimits, protocol_factory
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http=protocol_factory(HeaderLimits()),
            loop="uvloop", access_log=False, log_level="warning", lifespan="off",
            proxy_headers=False, server_header=False)  # as `gateway serve` runs it
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("wrk"):
        sys.exit("needs valgrind and wrk: apt-get install valgrind wrk")
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-floor-"))
    port = free_port()
    proc = start(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                  f"--callgrind-out-file={workdir / 'callgrind.out'}", sys.executable, "-c",
                  TRIVIAL_SERVER, str(port)], "0", {}, log=workdir / "server.log")
    try:
        wait_port(port, timeout=120)
        per_request, n = count_per_request(proc.pid, workdir, "floor",
                                           f"http://127.0.0.1:{port}/v1/predict", JSON,
                                           args.seconds)
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"server floor {per_request / 1000:>7.1f} k instructions per request "
          f"({n} requests)")


if __name__ == "__main__":
    main()
