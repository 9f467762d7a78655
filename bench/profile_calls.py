"""Python function calls per request on the tenant's path, counted by cProfile.

    python bench/profile_calls.py [--seconds 5] [--path /v1/predict] [--top 40]

Runs `gateway serve` (the memory setup of bench_gateway.py: API key, scope, tier limit,
metrics, access log) under cProfile, drives it with wrk at c=64, stops it, and prints
the calls per request: Python functions and built-ins, then the functions called most
and those with the most own time. Timings under a profiler are inflated (every call pays
for its own bookkeeping), so read them as where the calls go, not as the gateway's
speed: bench_gateway.py and bench_instructions.py measure that. Coroutine resumptions
count as calls too (a request's coroutines suspend once, waiting on the upstream); "per
request" divides by the requests wrk had answered, warm-up included.
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
from pathlib import Path

import harness
from bench_gateway import BODY, JSON, start_setup
from harness import fake_upstream, stop, wrk

# `gateway serve` inside cProfile; SIGTERM (what `stop` sends) writes the profile. uvicorn
# restores the handler it found and raises the signal again once it has shut down.
PROFILED = """\
import cProfile, os, signal, sys
from gateway.cli import main
profile, out = cProfile.Profile(), sys.argv[1]
def dump(*_):
    profile.disable()
    profile.dump_stats(out)
    os._exit(0)
signal.signal(signal.SIGTERM, dump)
sys.argv = ["gateway", "serve"]
profile.enable()
main()
dump()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--path", default="/v1/predict")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="gw-profile-")) / "serve.prof"
    original = harness.start

    def start_profiled(argv: list[str], *rest, **kw):  # type: ignore[no-untyped-def]
        if argv[1:] == ["-m", "gateway", "serve"]:
            argv = [argv[0], "-c", PROFILED, str(out)]
        return original(argv, *rest, **kw)

    harness.start = start_profiled  # gateway() looks it up when called
    upstream, up_port = fake_upstream()
    proc, port, auth = start_setup("memory", up_port)
    try:
        url = f"http://127.0.0.1:{port}{args.path}"
        headers = {**JSON, **(auth if args.path != "/v1/bench" else {})}
        warm = wrk("warm-up", url, 16, 2, "POST", BODY, headers)
        res = wrk("profiled", url, 64, args.seconds, "POST", BODY, headers)
    finally:
        stop(proc, upstream)
    if res.errors or not res.requests:
        sys.exit(f"{res.errors} failed of {res.requests} requests")
    stats = pstats.Stats(str(out))
    served = warm.requests + res.requests
    rows = [(cc / served, tt / served, f"{_short(f)}:{line} {name}")
            for (f, line, name), (cc, _, tt, *_r) in stats.stats.items()]  # type: ignore[attr-defined]
    python = sum(c for (f, _, _), (c, *_r) in stats.stats.items() if f != "~") / served  # type: ignore[attr-defined]
    builtin = sum(c for (f, _, _), (c, *_r) in stats.stats.items() if f == "~") / served  # type: ignore[attr-defined]
    print(f"{served} requests profiled ({res.rps:.0f} req/s under the profiler)")
    print(f"per request: {python:.0f} Python function calls, {builtin:.0f} built-in calls")
    print("\nmost called (per request):")
    for calls, _, name in sorted(rows, reverse=True)[:args.top]:
        print(f"  {calls:6.2f}  {name}")
    print("\nmost own time (µs per request, inflated by the profiler):")
    for calls, own, name in sorted(rows, key=lambda r: -r[1])[:args.top]:
        print(f"  {own * 1e6:7.2f}  {calls:5.2f} calls  {name}")


def _short(path: str) -> str:
    """A file's path from its package (site-packages, the project, the standard library)."""
    for marker in ("site-packages/", str(harness.ROOT) + "/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


if __name__ == "__main__":
    main()
