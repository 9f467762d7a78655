"""Instructions per proxied request, counted by valgrind's callgrind: a figure that does
not drift with this machine's speed, unlike req/s (which moved by tens of percent
between identical runs a minute apart here).

    python bench/bench_instructions.py [--seconds 8] [--case NAME ...]

Each case starts `gateway serve` (one worker) under callgrind with instrumentation off,
warms it up, switches instrumentation on, drives it with wrk (c=16) against the fast
fake upstream, dumps the counts and divides by the requests served. All threads count
(the Python thread and the HTTP client's Rust threads). Cases:

  full   metrics and access log on (the default configuration)
  quiet  metrics and access log off: `full` minus `quiet` is what observability costs
  logs   access log only;  metrics   metrics only

Throughput of a CPU-bound server is proportional to 1 / CPU per request, so the ratio
of instruction counts predicts the throughput ratio, without the machine's noise.
Needs valgrind and wrk (apt-get install valgrind wrk).
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

from bench_gateway import BODY, ROUTES
from harness import fake_upstream, free_port, start, stop, wait_port, wrk

CASES = {
    "full": {},
    "quiet": {"GATEWAY_METRICS": "false", "GATEWAY_ACCESS_LOG": "false"},
    "logs": {"GATEWAY_METRICS": "false"},
    "metrics": {"GATEWAY_ACCESS_LOG": "false"},
    "layer": {"GATEWAY_METRICS": "false", "GATEWAY_LOG_LEVEL": "warning"},
}


def callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def measure(case: str, up_port: int, seconds: float) -> tuple[float, int]:
    """(instructions per request, requests) for one case."""
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-ir-"))
    (workdir / "routes.yaml").write_text(ROUTES % up_port)
    (workdir / "policies").mkdir()
    port = free_port()
    out = workdir / "callgrind.out"
    env = {"GATEWAY_PORT": str(port), "GATEWAY_ROUTES_FILE": str(workdir / "routes.yaml"),
           "GATEWAY_POLICIES_DIR": str(workdir / "policies"), "GATEWAY_DATA_DIR": str(workdir),
           "GATEWAY_LOG_FORMAT": "json", **CASES[case]}
    proc = start(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                  f"--callgrind-out-file={out}", sys.executable, "-m", "gateway", "serve"],
                 "0", env, log=workdir / "gateway.log")
    try:
        wait_port(port, timeout=120)
        url = f"http://127.0.0.1:{port}/v1/bench"
        wrk("warm-up", url, 16, 3, "POST", BODY, timeout=30)
        callgrind(proc.pid, "--instr=on")
        # Generous timeout: under callgrind the gateway runs ~50x slower.
        res = wrk(case, url, 16, seconds, "POST", BODY, {"Content-Type": "application/json"},
                  timeout=30)
        callgrind(proc.pid, "--dump")
        callgrind(proc.pid, "--instr=off")
        time.sleep(1)
        total = 0
        for dump in workdir.glob("callgrind.out*"):
            m = re.search(r"^summary:\s+(\d+)", dump.read_text(errors="replace"), re.M)
            if m:
                total += int(m.group(1))
        if res.errors or not res.requests:
            sys.exit(f"{case}: {res.errors} failed of {res.requests} requests")
        return total / res.requests, res.requests
    finally:
        stop(proc)
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


if __name__ == "__main__":
    main()
