"""Time per call of the two per-request pieces of observability, in process:

    python bench/bench_observability_parts.py [--calls N] [--parts]

* the access line: `_access_fields` + `write_access` into the server's line buffer
  (JSON, buffered, as `gateway serve` writes it), the buffer's stream /dev/null;
* the metrics: `GatewayMetrics.observe_request` of a proxied request with one upstream
  attempt.

Both on a real `RequestContext` (a tenant's request, as bench_gateway.py sends it).
With `--parts`, the access line's steps one by one, as `write_access` runs them: its
fields (`_access_fields`), the timestamp, the orjson rendering, the secret scan of the
rendered line, and the copy into the buffer (the flushes to /dev/null included).
The best of five repeats, in ns per call: a loop shows what one piece costs without the
rest of the server, which `bench_instructions.py --case logs --case metrics` counts in
place (in instructions). Figures of different machines do not compare.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path
from types import SimpleNamespace

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import logging as gateway_logging
from gateway.context import Attempt, Principal, RequestContext
from gateway.metrics import GatewayMetrics
from gateway.middleware import _access_fields


def request() -> tuple[dict, RequestContext]:
    route = SimpleNamespace(name="predict", groups=())  # the two fields both pieces read
    ctx = RequestContext(
        request_id="0123456789abcdef0123456789abcdef", config=None,  # type: ignore[arg-type]
        route=route, path_params={}, method="POST",  # type: ignore[arg-type]
        path="/v1/predict", query=b"", headers=[], client_ip="127.0.0.1", started=0.0,
        principal=Principal("acme", "key_0123456789", "api_key"),
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        upstream_target="http://127.0.0.1:9000", rate_limit_remaining=99)
    ctx.attempts.append(Attempt("primary", "http://127.0.0.1:9000", 0.0012, ""))
    scope = {"method": "POST", "path": "/v1/predict", "headers": [], "state": {}}
    return scope, ctx


def per_call(fn, calls: int) -> float:  # type: ignore[no-untyped-def]
    return min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--parts", action="store_true", help="the access line step by step")
    args = parser.parse_args()
    gateway_logging.configure_logging("info", "json", buffered=True)
    buffered = gateway_logging._buffered
    assert buffered is not None
    buffered._stream = open("/dev/null", "wb")  # noqa: SIM115 (for the process's life)
    metrics = GatewayMetrics(enabled=True)
    scope, ctx = request()
    write_access = gateway_logging.write_access

    def access_line() -> None:
        write_access(_access_fields(scope, ctx, 200, 0.001234))

    def observe() -> None:
        metrics.observe_request(ctx, "POST", 200, 0.0013, False)

    print(f"access line (fields + write_access): {per_call(access_line, args.calls):7.0f} ns")
    print(f"metrics (observe_request, 1 attempt): {per_call(observe, args.calls):7.0f} ns")
    if args.parts:
        line_parts(scope, ctx, buffered, args.calls)


def line_parts(scope: dict, ctx: RequestContext,
               buffered: gateway_logging.BufferedLineLogger, calls: int) -> None:
    """The steps of `write_access`, each alone (keep in step with it)."""
    clock = gateway_logging._clock
    fields = _access_fields(scope, ctx, 200, 0.001234)
    fields.update(event="request", level="info", timestamp=clock.now())
    option = gateway_logging._NEWLINE
    data = orjson.dumps(fields, default=str, option=option)
    steps = {
        "fields (_access_fields)": lambda: _access_fields(scope, ctx, 200, 0.001234),
        "timestamp (_clock.now)": clock.now,
        "render (orjson.dumps)": lambda: orjson.dumps(fields, default=str, option=option),
        "secret scan": lambda: data.find(b"gw_") >= 0 or data.lower().find(b"earer") >= 0,
        "buffer (write_line)": lambda: buffered.write_line(data),
    }
    print(f"the access line's steps ({len(data)}-byte line):")
    for name, step in steps.items():
        print(f"  {name:<34} {per_call(step, calls):7.0f} ns")


if __name__ == "__main__":
    main()
