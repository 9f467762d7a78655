"""Benchmark the bundled inference services over real HTTP on loopback.

    python bench/bench_ml_services.py [--duration 5] [--no-pin]

For each service (sentiment, moderation) it starts the service as its own process (the
normal `python -m ml_services.<service>` command: uvicorn with uvloop + httptools, no access
log) and measures with `wrk` (a separate process; `apt-get install -y wrk`):

  (a) one-text requests at concurrency 64,
  (b) 32-text requests at concurrency 16,
  (c) the raw model in this process, batches of 32 (reference: the HTTP-free ceiling).

On a 2-core machine the service is pinned to CPU 0 and wrk to CPU 1 (taskset), so that the
generator never competes with the service. Prints texts/s, requests/s, p50 and p99.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUBJECTS = ["The movie", "This phone", "Our hotel room", "The service", "My new laptop",
            "The meeting", "Your answer", "The food", "This update", "The support team"]
PREDICATES = [
    "was absolutely wonderful and I loved every minute of it!",
    "is not good at all, honestly a waste of money.",
    "starts at 3pm on Tuesday in the second floor room.",
    "was terrible, slow and the staff were rude.",
    "is pretty great, but the battery could be better.",
    "was fine, nothing special either way.",
    "is a piece of shit and you are an idiot.",
    "made me really happy :) thanks a lot",
    "did not work and I am very disappointed.",
    "has been shipped and should arrive tomorrow.",
]


def corpus(n: int = 1024, seed: int = 7) -> list[str]:
    """Distinct, realistic short texts (a review-ish sentence each)."""
    rnd = random.Random(seed)
    return [f"{rnd.choice(SUBJECTS)} {rnd.choice(PREDICATES)} (#{i})" for i in range(n)]


def lua_script(bodies: Sequence[bytes], path: str = "/predict") -> str:
    items = ",\n".join(f"[==[{b.decode()}]==]" for b in bodies)
    return f"""
local bodies = {{ {items} }}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "{path}", nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def taskset(cpu: int | None) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def start_service(module: str, port: int, cpu: int | None) -> subprocess.Popen[bytes]:
    cmd = [*taskset(cpu), sys.executable, "-m", module, "--host", "127.0.0.1",
           "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.monotonic() + 90  # the INT8 embedder quantizes at start-up
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{module} did not become ready")


def run_wrk(port: int, bodies: Sequence[bytes], connections: int, duration: float,
            cpu: int | None, path: str = "/predict") -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua_script(bodies, path))
        script = f.name
    try:
        cmd = [*taskset(cpu), "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
               "--timeout", "10s", "-s", script, f"http://127.0.0.1:{port}{path}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def raw_model(service: str, texts: list[str], batch: int, duration: float) -> float:
    """Texts/s of the bare model (no HTTP), batches of `batch` texts."""
    model: Any
    if service == "sentiment":
        from ml_services.sentiment_model import VaderSentiment
        model = VaderSentiment()
    else:
        from ml_services.moderation import ProfanityModeration
        model = ProfanityModeration()
    batches = [texts[i:i + batch] for i in range(0, len(texts) - batch + 1, batch)]
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < duration:
        for b in batches:
            model.predict(b)
            done += len(b)
    return done / (time.perf_counter() - started)


def report(name: str, texts_per_request: int, r: dict[str, Any]) -> None:
    seconds = r["duration_us"] / 1e6
    rps = r["requests"] / seconds
    print(f"  {name:<34} {rps * texts_per_request:>9,.0f} texts/s {rps:>8,.0f} req/s"
          f"   p50 {r['p50_us'] / 1000:6.2f} ms   p99 {r['p99_us'] / 1000:6.2f} ms"
          f"   errors {r['errors']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per case")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--only", choices=["sentiment", "moderation"])
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed as the load generator: apt-get install -y wrk")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    server_cpu, client_cpu = (0, 1) if pin else (None, None)
    texts = corpus()
    single = [json.dumps({"text": t}).encode() for t in texts]
    multi = [json.dumps({"texts": texts[i:i + 32]}).encode() for i in range(0, len(texts), 32)]
    services = [("sentiment", "ml_services.sentiment", 18101),
                ("moderation", "ml_services.classify", 18102)]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, pinned={pin}, "
          f"{args.duration:g} s per case")
    for name, module, port in services:
        if args.only and args.only != name:
            continue
        print(f"{name} ({module}, one process)")
        proc = start_service(module, port, server_cpu)
        try:
            run_wrk(port, single, 64, 1, client_cpu)  # warm-up
            report("(a) 1 text/request, c=64", 1,
                   run_wrk(port, single, 64, args.duration, client_cpu))
            report("(b) 32 texts/request, c=16", 32,
                   run_wrk(port, multi, 16, args.duration, client_cpu))
        finally:
            proc.terminate()
            proc.wait(10)
        rate = raw_model(name, texts, 32, min(args.duration, 3.0))
        print(f"  {'(c) raw model, in-process, 32/batch':<34} {rate:>9,.0f} texts/s")


if __name__ == "__main__":
    main()
