"""Graceful drain (gateway/drain.py) on a real `gateway serve` process and real sockets:
SIGTERM fails readiness at once, connections are still taken during the grace, then
refused while the requests and streams in flight run to their end, then the process
exits; a request longer than the drain timeout is cut and does not hold the exit."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import write_routes
from tests.limits.conftest import write_policies
from tests.processes import GatewayProcess
from tests.servers import Backend

pytestmark = pytest.mark.slow


def start_gateway(tmp_path: Path, backend: Backend, **env: str) -> GatewayProcess:
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": backend.url}]}},
                 [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main",
                   "rewrite": "/", "public": True, "timeout": {"total": 60}}])
    write_policies(tmp_path / "policies", {"free": {"rate": "1000/second"}}, {})
    return GatewayProcess({"GATEWAY_ROUTES_FILE": str(tmp_path / "routes.yaml"),
                           "GATEWAY_POLICIES_DIR": str(tmp_path / "policies"),
                           "GATEWAY_DATA_DIR": str(tmp_path / "data"),
                           "GATEWAY_LOG_LEVEL": "warning", **env}, tmp_path).start()


def in_background(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def wait_for(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_sigterm_drains_in_flight_requests_and_streams(tmp_path: Path, backend: Backend):
    gw = start_gateway(tmp_path, backend, GATEWAY_DRAIN_GRACE="0.8",
                       GATEWAY_DRAIN_TIMEOUT="20")
    assert gw.proc is not None
    kept_alive = httpx.Client(base_url=gw.url, timeout=30)
    assert kept_alive.get("/healthz").headers.get("connection") != "close"
    slow_before = backend.hits["/slow"]

    def stream() -> list[str]:
        with httpx.stream("GET", gw.url + "/api/sse?n=6&gap=0.4", timeout=30) as r:
            return [line for line in r.iter_lines() if line.startswith("data:")]

    slow, slow_out = in_background(
        lambda: httpx.get(gw.url + "/api/slow?delay=2.5", timeout=30))
    sse, sse_out = in_background(stream)
    wait_for(lambda: backend.hits["/slow"] > slow_before and backend.hits["/sse"] > 0, 10)

    gw.proc.send_signal(signal.SIGTERM)
    ready = httpx.get(gw.url + "/readyz", timeout=5)  # a new connection, in the grace
    assert ready.status_code == 503
    assert ready.json()["checks"]["draining"]["ok"] is False
    assert ready.headers["connection"] == "close"
    # A keep-alive client is served once more, and told to go elsewhere after it.
    during = kept_alive.get("/api/echo")
    assert during.status_code == 200 and during.headers["connection"] == "close"

    # After the grace the listener is closed while both are still in flight...
    wait_for(lambda: refuses_connections(gw.port), 10)
    assert gw.proc.poll() is None and slow.is_alive() and sse.is_alive()
    # ...and both run to their end.
    slow.join(30)
    sse.join(30)
    assert "error" not in slow_out, slow_out
    assert slow_out["value"].status_code == 200
    assert slow_out["value"].json()["path"] == "/slow"
    assert "error" not in sse_out, sse_out
    assert len(sse_out["value"]) == 6
    assert gw.proc.wait(timeout=15) in (0, -signal.SIGTERM)
    kept_alive.close()


def test_a_request_longer_than_the_drain_timeout_does_not_hold_the_exit(
        tmp_path: Path, backend: Backend):
    gw = start_gateway(tmp_path, backend, GATEWAY_DRAIN_TIMEOUT="1")
    assert gw.proc is not None
    before = backend.hits["/slow"]
    stuck, stuck_out = in_background(
        lambda: httpx.get(gw.url + "/api/slow?delay=6", timeout=60))
    wait_for(lambda: backend.hits["/slow"] > before, 10)
    gw.proc.send_signal(signal.SIGTERM)  # no grace: the listener closes at once
    wait_for(lambda: refuses_connections(gw.port), 5)
    assert gw.proc.wait(timeout=15) in (0, -signal.SIGTERM)
    stuck.join(10)
    assert not stuck.is_alive()
    # Cut: the contract's 503 problem, not the slow upstream's answer.
    value = stuck_out.get("value")
    assert value is not None and value.status_code == 503, stuck_out
    assert value.headers["content-type"] == "application/problem+json"
    assert value.json()["detail"].startswith("the gateway is shutting down")
