"""The gateway's /metrics over real HTTP, and the request observer on its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from gateway.config import load_config
from gateway.context import Attempt, Principal, RequestContext
from gateway.metrics import GatewayMetrics
from tests.conftest import write_routes
from tests.observability.stack import scrape, value
from tests.servers import Backend, free_port

StartGateway = Callable[..., Any]


def metrics_routes(tmp_path: Path, backend: str) -> None:
    """Public routes (the subject here is counting, not credentials), and one that is not."""
    refused = f"http://127.0.0.1:{free_port()}"
    public = {"public": True}
    write_routes(tmp_path / "routes.yaml", {
        "main": {"targets": [{"url": backend}]},
        "refused": {"targets": [{"url": refused}],
                    "circuit_breaker": {"failures": 1, "cooldown": 600}},
    }, [
        {"name": "ok", "match": {"prefix": "/ok"}, "upstream": "main", "rewrite": "/",
         **public},
        {"name": "retried", "match": {"path": "/retried"}, "upstream": "main",
         "rewrite": "/status/503", "retry": {"attempts": 2, "backoff": 0.001}, **public},
        {"name": "fallback", "match": {"path": "/fallback"}, "upstream": "refused",
         "fallbacks": ["main"], "rewrite": "/", **public},
        {"name": "slow", "match": {"path": "/slow"}, "upstream": "main",
         "timeout": {"connect": 1.0, "total": 0.1}, **public},
        {"name": "private", "match": {"prefix": "/private"}, "upstream": "main",
         "rewrite": "/"},
    ])


def test_requests_upstreams_and_circuits_are_counted(
        tmp_path: Path, backend: Backend, start_gateway: StartGateway) -> None:
    metrics_routes(tmp_path, backend.url)
    gw = start_gateway()
    for _ in range(4):
        assert gw.client.get("/ok/a").status_code == 200
    assert gw.client.post("/ok/b", content=b"x").status_code == 200
    assert gw.client.request("BREW", "/ok/c").status_code == 405  # not in the route's methods
    assert gw.client.get("/nowhere").status_code == 404
    assert gw.client.get("/retried").status_code == 502
    assert gw.client.get("/fallback").status_code == 200
    assert gw.client.get("/slow?delay=1").status_code == 504
    assert gw.client.get("/healthz").status_code == 200
    assert gw.client.get("/private/a").status_code == 401  # no credentials
    time.sleep(1.1)  # one refresh of the state gauges
    m = scrape(gw.url)

    req = "gateway_requests_total"
    assert value(m, req, route="ok", method="GET", status_class="2xx") == 4
    assert value(m, req, route="ok", method="POST", status_class="2xx") == 1
    assert value(m, req, route="unmatched", method="OTHER", status_class="4xx") == 1
    assert value(m, req, route="unmatched", method="GET", status_class="4xx") == 1
    assert value(m, req, route="retried", status_class="5xx") == 1
    assert value(m, req, route="slow", status_class="5xx") == 1
    assert value(m, req, route="control", status_class="2xx") == 1  # /healthz; not this scrape
    # A refusal is counted on its route, and never reached the upstream.
    assert value(m, req, route="private", method="GET", status_class="4xx") == 1
    assert value(m, "gateway_upstream_request_duration_seconds_count", route="private") == 0
    assert value(m, "gateway_request_duration_seconds_count", route="ok") == 5
    assert value(m, "gateway_request_duration_seconds_bucket", route="slow", le="0.05") == 0
    assert value(m, "gateway_request_duration_seconds_bucket", route="slow", le="0.25") == 1
    assert value(m, "gateway_requests_in_flight") == 0  # a scrape does not count itself

    main = backend.url
    up = "gateway_upstream_request_duration_seconds_count"
    assert value(m, up, route="ok", upstream="main", target=main) == 5
    assert value(m, up, route="retried", target=main) == 3
    err = "gateway_upstream_errors_total"
    assert value(m, err, route="retried", upstream="main", target=main, kind="status") == 3
    assert value(m, err, route="slow", kind="timeout") == 1  # a late head is no connect error
    assert value(m, err, route="fallback", upstream="refused", kind="connect") == 1
    assert value(m, "gateway_upstream_retries_total", route="retried", target=main) == 2
    assert value(m, "gateway_upstream_fallbacks_total", route="fallback", upstream="main") == 1

    state = "gateway_upstream_circuit_state"
    assert value(m, state, upstream="refused") == 2  # one failure opens it
    assert value(m, state, upstream="main") == 0
    assert value(m, "gateway_upstream_up", upstream="refused") == 0
    assert value(m, "gateway_upstream_up", upstream="main") == 1
    # No store configured: the rate-limit store is not degraded, and there is no PING.
    assert value(m, "gateway_store_degraded") == 0
    assert not any(name == "gateway_store_up" for name, _ in m)


def test_reloads_and_refusals_are_counted(
        tmp_path: Path, backend: Backend, start_gateway: StartGateway) -> None:
    metrics_routes(tmp_path, backend.url)
    gw = start_gateway()
    routes = tmp_path / "routes.yaml"
    good = routes.read_text()
    before = scrape(gw.url)
    assert value(before, "gateway_config_reloads_total", result="failure") == 0
    routes.write_text("version: 1\nroutes: [\n")
    deadline = time.monotonic() + 5
    while gw.holder.reload_failures == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    routes.write_text(good.replace("/ok", "/fine"))
    while gw.holder.generation == 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    after = scrape(gw.url)
    assert value(after, "gateway_config_reloads_total", result="failure") == 1
    assert value(after, "gateway_config_reloads_total", result="success") == 1


def test_shared_store_ping_is_reported(tmp_path: Path, backend: Backend,
                                       start_gateway: StartGateway, redis_server: Any) -> None:
    metrics_routes(tmp_path, backend.url)
    gw = start_gateway(redis_url=redis_server.url)
    time.sleep(1.2)
    assert value(scrape(gw.url), "gateway_store_up", store="redis") == 1
    redis_server.stop()
    time.sleep(2.5)
    assert value(scrape(gw.url), "gateway_store_up", store="redis") == 0


def test_metrics_can_be_turned_off(
        tmp_path: Path, backend: Backend, start_gateway: StartGateway) -> None:
    metrics_routes(tmp_path, backend.url)
    gw = start_gateway(metrics=False)
    assert gw.client.get("/ok/a").status_code == 200
    m = scrape(gw.url)
    assert value(m, "gateway_requests_total") == 0
    assert value(m, "gateway_upstream_request_duration_seconds_count") == 0


# -- the observer without a server ---------------------------------------------------------

@pytest.fixture
def config(tmp_path: Path) -> Any:
    write_routes(tmp_path / "routes.yaml", {
        "a": {"targets": [{"url": "http://a:1"}, {"url": "http://a:2"}]},
        "b": {"targets": [{"url": "http://b:1"}]},
    }, [{"name": "cached", "match": {"prefix": "/c"}, "upstream": "a", "fallbacks": ["b"],
         "cache": {"ttl": 5}}])
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "tenants.yaml").write_text(yaml.safe_dump(
        {"version": 1, "tenants": {"acme": {"name": "Acme"}}}))
    return load_config(tmp_path / "routes.yaml", tmp_path / "policies")


def make_ctx(config: Any, tenant: str | None = None, **fields: Any) -> RequestContext:
    route = config.routes["cached"]
    ctx = RequestContext(request_id="r", config=config, route=route, path_params={},
                         method="GET", path="/c/x", query=b"", headers=[], client_ip="",
                         started=0.0, **fields)
    if tenant is not None:
        ctx.principal = Principal(tenant_id=tenant, credential_id="k1", kind="api_key")
    return ctx


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    metrics.fold()  # what every scrape does first
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_tenant_label_is_a_configured_tenant_or_unknown(config: Any) -> None:
    metrics = GatewayMetrics()
    metrics.observe_request(make_ctx(config, "acme", cache_status="HIT"), "GET", 200, 0.001,
                            False)
    metrics.observe_request(make_ctx(config, "stranger-42", cache_status="MISS"), "GET", 200,
                            0.01, False)
    metrics.observe_request(make_ctx(config, None, cache_status="BYPASS"), "GET", 200, 0.01,
                            False)
    metrics.observe_request(make_ctx(config, "acme"), "GET", 429, 0.001, False)
    metrics.observe_request(make_ctx(config, "stranger-43"), "GET", 429, 0.001, False)
    c = "gateway_cache_requests_total"
    assert sample(metrics, c, route="cached", tenant="acme", result="hit") == 1
    assert sample(metrics, c, route="cached", tenant="unknown", result="miss") == 1
    assert sample(metrics, c, route="cached", tenant="unknown", result="bypass") == 1
    rl = "gateway_rate_limited_total"
    assert sample(metrics, rl, route="cached", tenant="acme") == 1
    assert sample(metrics, rl, route="cached", tenant="unknown") == 1
    text = metrics.render().decode()
    assert "stranger" not in text


def test_attempts_give_retries_and_fallbacks(config: Any) -> None:
    metrics = GatewayMetrics()
    ctx = make_ctx(config, fallbacks=1, attempts=[
        Attempt("a", "http://a:1", 0.5, "timeout"),
        Attempt("a", "http://a:2", 0.2, "connect"),
        Attempt("b", "http://b:1", 0.01, ""),
    ])
    metrics.observe_request(ctx, "GET", 200, 0.8, False)
    assert sample(metrics, "gateway_upstream_retries_total", route="cached", upstream="a",
                  target="http://a:1") == 1
    assert sample(metrics, "gateway_upstream_retries_total", route="cached", upstream="a",
                  target="http://a:2") == 0  # the group was exhausted, not retried
    assert sample(metrics, "gateway_upstream_fallbacks_total", route="cached",
                  upstream="b") == 1
    assert sample(metrics, "gateway_upstream_errors_total", route="cached", upstream="a",
                  target="http://a:1", kind="timeout") == 1
    assert sample(metrics, "gateway_upstream_request_duration_seconds_count", route="cached",
                  upstream="b", target="http://b:1") == 1


def test_state_gauges_are_read_from_their_sources(config: Any) -> None:
    from gateway.config.runtime import ConfigHolder
    from gateway.metrics import StateSources
    from gateway.upstream_health import TargetHealth

    store = SimpleNamespace(degraded=True, degraded_seconds_total=2.5)
    upstream = SimpleNamespace(shadow_dropped=3)
    metrics = GatewayMetrics(sources=StateSources(ConfigHolder(config), TargetHealth(),
                                                  store, upstream))
    metrics.refresh()
    assert sample(metrics, "gateway_store_degraded") == 1
    assert sample(metrics, "gateway_store_degraded_seconds_total") == 2.5
    assert sample(metrics, "gateway_shadow_dropped_total") == 3
    upstream.shadow_dropped = 5
    store.degraded, store.degraded_seconds_total = False, 4.0
    metrics.refresh()
    metrics.refresh()
    assert sample(metrics, "gateway_store_degraded") == 0
    assert sample(metrics, "gateway_store_degraded_seconds_total") == 4.0
    assert sample(metrics, "gateway_shadow_dropped_total") == 5
    assert sample(metrics, "gateway_upstream_circuit_state", upstream="b",
                  target="http://b:1") == 0
