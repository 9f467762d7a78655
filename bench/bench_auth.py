"""What authentication costs: the same route unauthenticated, with an API key, with a JWT.

    python bench/bench_auth.py [--seconds 10]

One gateway (one worker, on the gateway core) in front of the fast fake upstream; three
routes to the same upstream: public, and two needing scope `bench`. wrk drives each at
concurrency 1 and 64. Prints req/s, p50, p99, gateway CPU per request, and per
credential the added p50 at c=1 and the throughput ratio at c=64 against the public
route. Targets: added p50 <= 0.1 ms, throughput drop <= 10 %.
Needs `wrk` and `taskset`, like bench_gateway.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import ROOT, Result, fake_upstream, gateway, stop, wrk

ROUTES = """\
version: 1
upstreams:
  fake: {targets: [{url: "http://127.0.0.1:%d"}]}
routes:
  - name: open
    match: {path: /v1/open, methods: [POST]}
    upstream: fake
    rewrite: /predict
    public: true
  - name: bench
    match: {path: /v1/bench, methods: [POST]}
    upstream: fake
    rewrite: /predict
    scopes: [bench]
"""
TENANTS = "version: 1\ntenants:\n  bench: {routes: ['*']}\n"
BODY = '{"text": "I love this product, it works great"}'


def _cli(workdir: Path, *args: str) -> str:
    env = {**os.environ, "GATEWAY_DATA_DIR": str(workdir),
           "GATEWAY_ROUTES_FILE": str(workdir / "routes.yaml"),
           "GATEWAY_POLICIES_DIR": str(workdir / "policies")}
    return subprocess.run([sys.executable, "-m", "gateway", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gw-bench-auth-"))
    (workdir / "policies").mkdir()
    (workdir / "policies" / "tenants.yaml").write_text(TENANTS)
    upstream, up_port = fake_upstream()
    gw, gw_port, _ = gateway(ROUTES % up_port, workdir=workdir)
    base = f"http://127.0.0.1:{gw_port}"
    results: dict[tuple[str, int], Result] = {}
    try:
        key = _cli(workdir, "keys", "create", "--tenant", "bench").strip()
        client = dict(line.split("=", 1) for line in
                      _cli(workdir, "clients", "create", "--tenant", "bench",
                           "--scopes", "bench").split())
        time.sleep(0.5)  # the gateway picks the new credentials up
        token = httpx.post(base + "/oauth/token", auth=(client["CLIENT_ID"],
                                                        client["CLIENT_SECRET"]),
                           data={"grant_type": "client_credentials"}).json()["access_token"]
        cases = {
            "none (public route)": ("/v1/open", {}),
            "api key": ("/v1/bench", {"Authorization": f"Bearer {key}"}),
            "jwt (ES256)": ("/v1/bench", {"Authorization": f"Bearer {token}"}),
        }
        for path, headers in cases.values():  # warm-up, and a check that each case works
            r = httpx.post(base + path, content=BODY, headers=headers)
            assert r.status_code == 200, (path, r.status_code, r.text)
        wrk("warm-up", base + "/v1/open", 16, 2, "POST", BODY)
        for conns in (1, 64):
            for name, (path, headers) in cases.items():
                res = wrk(name, base + path, conns, args.seconds, "POST", BODY,
                          {"Content-Type": "application/json", **headers}, server_pid=gw.pid)
                results[(name, conns)] = res
                print(res.row(), flush=True)
                time.sleep(0.5)
    finally:
        stop(gw, upstream)
    print()
    for name in list(cases)[1:]:
        c1, o1 = results[(name, 1)], results[("none (public route)", 1)]
        c64, o64 = results[(name, 64)], results[("none (public route)", 64)]
        print(f"{name:<12} added p50 at c=1: {(c1.p50_ms - o1.p50_ms) * 1000:+.0f} us; "
              f"throughput at c=64: {c64.rps / o64.rps:.3f}x; "
              f"CPU/req at c=64: {c64.cpu_us - o64.cpu_us:+.1f} us")
    print(f"(logs in {workdir})")


if __name__ == "__main__":
    main()
