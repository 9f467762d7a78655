"""Readiness after a Redis outage, with no client traffic to trigger a probe: a real Redis
is killed (SIGKILL) and restarted on the same port under a real `gateway serve`."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.deployment import Deployment
from tests.processes import GatewayProcess, RedisServer
from tests.servers import Backend

pytestmark = pytest.mark.slow

COOLDOWN = 1.0  # GATEWAY_STORE_BREAKER_COOLDOWN's default


def poll_until(url: str, status: int, timeout: float) -> float:
    """GET `url` every 50 ms until it answers `status`; the seconds that took."""
    started = time.monotonic()
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == status:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{url} did not answer {status} within {timeout}s")
        time.sleep(0.05)


def limited(gateway: GatewayProcess, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(gateway.url + "/api/x", headers=headers, timeout=5)


# (fail mode, idle): idle waits with no request at all, then sends a request first;
# otherwise /readyz is polled from the restart on, as an orchestrator does.
@pytest.mark.parametrize(("mode", "idle"), [("open", False), ("closed", True)])
def test_readyz_recovers_without_traffic(tmp_path, backend: Backend, mode, idle):
    # AOF: the API keys the gateway reads live in this Redis, and must outlive the kill.
    redis = RedisServer(tmp_path / "redis", "--appendonly", "yes").start()
    deployment = Deployment(tmp_path, redis).configure(
        {"main": {"targets": [{"url": backend.url}]}},
        [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/"}],
        # gcra refills one unit every 86.4 s: the one spent before the outage is still
        # spent after it, which only a charged (not fail-open) request can report.
        {"basic": {"rate": "1000/day"}}, {"acme": {"tier": "basic"}})
    try:
        gateway = deployment.replica(GATEWAY_STORE_FAIL_MODE=mode,
                                     GATEWAY_STORE_BREAKER_COOLDOWN=str(COOLDOWN))
        h = deployment.as_tenant("acme")
        assert limited(gateway, h).headers["ratelimit-remaining"] == "999"
        assert httpx.get(gateway.url + "/readyz").status_code == 200

        assert redis.proc is not None
        redis.proc.kill()
        redis.proc.wait()
        # Readiness polls alone open the breaker: each one's PING fails.
        for _ in range(20):
            ready = httpx.get(gateway.url + "/readyz")
            if ready.json()["checks"]["redis"]["detail"].startswith("breaker open"):
                break
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["redis"]["detail"].startswith("breaker open")

        redis.start()  # same port, same AOF
        if idle:
            time.sleep(COOLDOWN + 1.0)  # nothing reaches the gateway meanwhile
            r = limited(gateway, h)  # the first request after recovery: limited again
            assert r.status_code == 200, r.text
            assert int(r.headers["ratelimit-remaining"]) < 999
            assert httpx.get(gateway.url + "/readyz").status_code == 200
        else:
            took = poll_until(gateway.url + "/readyz", 200, timeout=COOLDOWN + 5)
            assert took <= COOLDOWN + 1.0, took
            r = limited(gateway, h)
            assert r.status_code == 200 and int(r.headers["ratelimit-remaining"]) < 999
    finally:
        deployment.stop()
        redis.stop()
