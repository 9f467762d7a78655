"""Every dashboard panel and every alert rule, evaluated by a real Prometheus.

The topology of docker-compose.yml as plain processes on loopback: a throwaway Redis, the
gateway (`python -m gateway serve`, state in that Redis), the backends it fronts (the
tests' Backend and the bundled inference services, started by their own commands) and
Debian's `prometheus` scraping them every second with deploy/prometheus/alerts.yml
loaded. Tenants in policies/ (one on a tier with a small rate limit) call with real API
keys issued into the gateway's Redis key store. After a mix of traffic (successes,
upstream failures, 401s, 403s, 429s, cache hits, misses and bypasses), every PromQL
expression of every panel of dashboards/*.json and of every rule in alerts.yml goes
through Prometheus's HTTP API: each must be valid, and each must return real numbers.

Alert rules: an alert's `expr` returns nothing while all is well (`x > 0.05`), so
"returns data" cannot be asked of it. Every alert in alerts.yml keeps the shape
`<signal> <op> <number>`; the test checks that shape, evaluates the whole expr for
validity and the signal for data. Whether the thresholds fire is
deploy/prometheus/alerts_test.yml's job (`promtool test rules`, test_rules.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import write_routes
from tests.llm.conftest import Provider
from tests.observability.stack import (
    ALERTS_FILE,
    DASHBOARDS_DIR,
    PrometheusServer,
    ServiceProcess,
    has_numbers,
)
from tests.observability.tenants import bearer, issue_keys, write_policies
from tests.processes import GatewayProcess, RedisServer
from tests.servers import Backend, free_port

# "acme" calls the cached route; "tiny" may call only /limited, 5 times a minute. The
# whole test runs well within that minute, so the second wave is refused from its start.
TIERS = {"standard": {"rate": "1000/minute", "tokens": "100000/minute", "budget": "100/day"},
         "tiny": {"rate": "5/minute"}}
TENANTS = {"acme": {"tier": "standard"},
           "tiny": {"tier": "tiny", "routes": ["limited"]}}
TINY_LIMIT = 5
# Grafana's variables, as the tests fill them in.
WINDOW = "30s"
VARIABLES = {"$__rate_interval": WINDOW, "$route": ".*", "$task": ".*"}
_ALERT_SHAPE = re.compile(r"\A(?P<signal>.+?)\s*(?:>|<|>=|<=|==|!=)\s*[0-9.]+\s*\Z", re.S)


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    """(dashboard-uid/panel title/refId, expr) of every panel target."""
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for name, fill in VARIABLES.items():
                    expr = expr.replace(name, fill)
                yield f"{doc['uid']}/{panel['title']}/{target['refId']}", expr


def rule_exprs() -> Iterator[tuple[str, str, str]]:
    """(name, expr, the expression that must return data) of every rule."""
    doc = yaml.safe_load(ALERTS_FILE.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"].strip()
            if "record" in rule:
                yield f"record/{rule['record']}", expr, expr
            else:
                m = _ALERT_SHAPE.match(expr)
                assert m, f"alert {rule['alert']}: expr is not `<signal> <op> <number>`"
                yield f"alert/{rule['alert']}", expr, m.group("signal")


def stack_routes(path: Path, backend: str, flaky: str, sentiment: str, classify: str,
                 llm: str) -> None:
    refused = f"http://127.0.0.1:{free_port()}"
    broken = f"http://127.0.0.1:{free_port()}"
    public = {"public": True}
    write_routes(path, {
        "backend": {"targets": [{"url": backend}]},
        # Its failures must not open a circuit: the error panels need them to go on.
        "flaky": {"targets": [{"url": flaky}],
                  "circuit_breaker": {"failures": 1000, "cooldown": 1}},
        "refused": {"targets": [{"url": refused}],
                    "circuit_breaker": {"failures": 1000, "cooldown": 1}},
        "broken": {"targets": [{"url": broken}],
                   "circuit_breaker": {"failures": 1, "cooldown": 600}},
        "sentiment": {"targets": [{"url": sentiment}]},
        "classify": {"targets": [{"url": classify}]},
        "llm": {"targets": [{"url": llm}]},  # an OpenAI-compatible server
    }, [
        {"name": "ok", "match": {"prefix": "/ok"}, "upstream": "backend", "rewrite": "/",
         **public},
        {"name": "boom", "match": {"path": "/boom"}, "upstream": "flaky",
         "rewrite": "/status/503", "retry": {"attempts": 1, "backoff": 0.01}, **public},
        {"name": "slow", "match": {"path": "/slow"}, "upstream": "flaky",
         "timeout": {"connect": 1.0, "total": 0.2}, **public},
        {"name": "fallback", "match": {"path": "/fallback"}, "upstream": "refused",
         "fallbacks": ["backend"], "rewrite": "/", **public},
        {"name": "down", "match": {"path": "/down"}, "upstream": "broken", **public},
        {"name": "sentiment", "match": {"path": "/v1/sentiment", "methods": ["POST"]},
         "upstream": "sentiment", "rewrite": "/predict", **public},
        {"name": "classify", "match": {"path": "/v1/classify", "methods": ["POST"]},
         "upstream": "classify", "rewrite": "/predict", **public},
        # Tenants' routes: credentials required.
        {"name": "limited", "match": {"path": "/limited"}, "upstream": "backend",
         "rewrite": "/"},
        {"name": "cached", "match": {"path": "/cached", "methods": ["POST"]},
         "upstream": "backend", "rewrite": "/", "cache": {"enabled": True, "ttl": 60}},
        {"name": "chat", "match": {"path": "/v1/chat/completions", "methods": ["POST"]},
         "llm": {"api": "chat"}},
        {"name": "jobs", "match": {"path": "/jobs-work", "methods": ["POST"]},
         "upstream": "backend", "rewrite": "/", "async": {}},
    ], models={"m": {"serve": [{"upstream": "llm"}],
                     "price": {"prompt": 1.0, "completion": 2.0}}})


def send_traffic(gateway: str, keys: dict[str, str], wave: int) -> int:
    """One wave of the traffic mix every panel needs; returns how many calls of tenant
    "tiny" were let through before its rate limit refused one.

    Add here whatever a new panel or alert needs to have data.
    """
    with httpx.Client(base_url=gateway, timeout=10) as c:
        # 401s: no credentials, a well-formed key that does not exist, a malformed one.
        assert c.get("/limited").status_code == 401
        assert c.get("/limited", headers=bearer("gw_aaaaaaaaaaaa_" + "x" * 43)
                     ).status_code == 401
        assert c.get("/limited", headers=bearer("not-a-key")).status_code == 401
        # 403: a real key of a tenant that may not call the route.
        assert c.post("/cached", headers=bearer(keys["tiny"]), json={}).status_code == 403
        # 429s: tenant "tiny" calls until its limit refuses it, then twice more.
        allowed = 0
        while (r := c.get("/limited", headers=bearer(keys["tiny"]))).status_code == 200:
            allowed += 1
            assert allowed <= TINY_LIMIT
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        for _ in range(2):
            assert c.get("/limited", headers=bearer(keys["tiny"])).status_code == 429
        # Cache: the same body twice (a miss, then a hit), then a bypass.
        body = {"text": f"wave {wave}"}
        for expected in ("MISS", "HIT"):
            r = c.post("/cached", headers=bearer(keys["acme"]), json=body)
            assert r.status_code == 200 and r.headers["x-cache"] == expected
        r = c.post("/cached", json=body,
                   headers={**bearer(keys["acme"]), "Cache-Control": "no-cache"})
        assert r.status_code == 200 and r.headers["x-cache"] == "BYPASS"
        for i in range(20):
            assert c.get(f"/ok/item/{i}").status_code == 200
        for i in range(5):
            assert c.get(f"/no/such/path/{i}").status_code == 404
        for _ in range(3):
            assert c.get("/boom").status_code == 502           # 5xx upstream, retried
        for _ in range(2):
            assert c.get("/slow?delay=2").status_code == 504   # upstream timeout
        for _ in range(3):
            assert c.get("/fallback").status_code == 200       # refused, fell back
        for _ in range(2):
            assert c.get("/down").status_code in (502, 503)    # circuit opens
        # LLM calls of tenant "acme" (tokens, spend, budget burn): JSON and streamed.
        for stream in (False, False, True):
            r = c.post("/v1/chat/completions", headers=bearer(keys["acme"]), json={
                "model": "m", "max_tokens": 8, "stream": stream,
                "messages": [{"role": "user", "content": "count to eight"}]})
            assert r.status_code == 200
        # Jobs, run by the gateway's own workers: submitted, finished, their latency.
        locations = []
        for i in range(3):
            r = c.post("/jobs-work", json={"i": i},
                       headers={**bearer(keys["acme"]), "Prefer": "respond-async"})
            assert r.status_code == 202
            locations.append(r.headers["location"])
        for location in locations:
            deadline = time.monotonic() + 10
            while c.get(location, headers=bearer(keys["acme"])).json()["status"] != \
                    "succeeded":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        for _ in range(5):
            assert c.post("/v1/sentiment", json={"text": "I love this"}).status_code == 200
            assert c.post("/v1/classify",
                          json={"texts": ["have a nice day", "you idiot"]}).status_code == 200
    return allowed


def fail_one_reload(routes: Path) -> None:
    """A refused reload, then a good one: the reload counters both move."""
    good = routes.read_text()
    routes.write_text("version: 1\nroutes: [\n")
    time.sleep(0.6)
    routes.write_text(good + "\n# touched\n")
    time.sleep(0.6)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    redis = RedisServer(tmp_path / "redis").start()
    backend = Backend("stack").start()
    flaky = Backend("flaky").start()
    llm = Provider("llm")
    services = [ServiceProcess("ml_services.sentiment", tmp_path).start(),
                ServiceProcess("ml_services.classify", tmp_path).start()]
    running: list[Any] = [redis, backend, flaky, llm.server, *services]
    try:
        for s in services:
            s.wait()
        routes = tmp_path / "routes.yaml"
        stack_routes(routes, backend.url, flaky.url, services[0].url, services[1].url,
                     llm.url)
        write_policies(tmp_path / "policies", TENANTS, TIERS)
        # Into the Redis key store, which the gateway opens because it shares that Redis.
        keys = issue_keys(tmp_path / "data", list(TENANTS), redis_url=redis.url)
        gateway = GatewayProcess({
            "GATEWAY_REDIS_URL": redis.url, "GATEWAY_LOG_FORMAT": "json",
            "GATEWAY_RELOAD_INTERVAL": "0.1", "GATEWAY_ACCESS_LOG": "false",
            "GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_JOBS_WORKERS": "2",
        }, tmp_path)
        running.append(gateway.start())
        # The scrape targets of deploy/prometheus/prometheus.yml, as loopback processes.
        # Add a (job, url) pair for every new process that serves /metrics.
        scrape_targets = [
            ("gateway", gateway.url),
            ("sentiment", services[0].url),
            ("classify", services[1].url),
        ]
        prometheus = PrometheusServer(tmp_path / "prometheus", scrape_targets).start()
        running.append(prometheus)
        prometheus.wait_until_scraping()
        yield {"gateway": gateway, "prometheus": prometheus, "routes": routes,
               "scrape_targets": scrape_targets, "keys": keys, "llm": llm.fake}
    finally:
        for proc in reversed(running):
            proc.stop()


def test_every_panel_and_rule_returns_data(stack: dict[str, Any]) -> None:
    prom: PrometheusServer = stack["prometheus"]
    gateway, keys = stack["gateway"].url, stack["keys"]
    allowed = send_traffic(gateway, keys, wave=1)
    time.sleep(2.5)  # a few scrapes between the waves: rates see the counters move
    fail_one_reload(stack["routes"])
    allowed += send_traffic(gateway, keys, wave=2)
    assert allowed == TINY_LIMIT  # the limit is per minute: the second wave got none
    time.sleep(2.5)

    targets = prom.api("targets")["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets} == {
        job: "up" for job, _ in stack["scrape_targets"]}
    # Recording rules have had an evaluation over the traffic.
    prom.wait_for("route:gateway_request_duration_seconds:p99_5m")

    empty, checked = [], 0
    for name, expr in dashboard_exprs():
        result = prom.query(expr)
        checked += 1
        if not has_numbers(result):
            empty.append(f"{name}: {expr}")
    for name, expr, signal in rule_exprs():
        prom.query(expr)  # valid as written
        checked += 1
        if not has_numbers(prom.query(signal)):
            empty.append(f"{name}: {signal}")
    assert not empty, "no data for:\n" + "\n".join(empty)
    assert checked >= 25

    # Prometheus itself evaluated every rule without an error.
    groups = prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(1 for _ in rule_exprs())
    assert all(r["health"] == "ok" for r in rules), [r.get("lastError") for r in rules]
    assert_numbers_match_traffic(prom, waves=2)
    tokens = {s["metric"]["kind"]: float(s["value"][1]) for s in prom.query(
        'sum by (kind) (gateway_llm_tokens_total{tenant="acme",model="m"})')}
    reported = stack["llm"].reported
    assert tokens == {"prompt": reported["prompt_tokens"],
                      "completion": reported["completion_tokens"]} == {
                          "prompt": 3 * 3 * 2, "completion": 8 * 3 * 2}


def assert_numbers_match_traffic(prom: PrometheusServer, waves: int) -> None:
    """Not just any data: the numbers agree with what `send_traffic` sent."""
    by_class = {
        (s["metric"]["route"], s["metric"]["status_class"]): float(s["value"][1])
        for s in prom.query("sum by (route, status_class) (gateway_requests_total)")
    }
    assert by_class[("ok", "2xx")] == 20 * waves
    assert by_class[("unmatched", "4xx")] == 5 * waves
    assert by_class[("boom", "5xx")] == 3 * waves
    assert by_class[("slow", "5xx")] == 2 * waves
    assert by_class[("limited", "2xx")] == TINY_LIMIT
    assert by_class[("limited", "4xx")] == (3 + 3) * waves  # 401s, 429s
    assert by_class[("cached", "2xx")] == 3 * waves and by_class[("cached", "4xx")] == waves
    limited = prom.query("sum by (route, tenant) (gateway_rate_limited_total)")
    assert {(s["metric"]["route"], s["metric"]["tenant"]): float(s["value"][1])
            for s in limited} == {("limited", "tiny"): 3 * waves}
    cache = prom.query("sum by (route, tenant, result) (gateway_cache_requests_total)")
    assert {(s["metric"]["route"], s["metric"]["tenant"], s["metric"]["result"]):
            float(s["value"][1]) for s in cache} == {
        ("cached", "acme", result): waves for result in ("hit", "miss", "bypass")}
    errors = {
        (s["metric"]["route"], s["metric"]["kind"]): float(s["value"][1])
        for s in prom.query("sum by (route, kind) (gateway_upstream_errors_total)")
    }
    assert errors[("boom", "status")] == 6 * waves  # each tried twice
    assert sum(v for (route, _), v in errors.items() if route == "slow") == 2 * waves
    assert errors[("fallback", "connect")] == 3 * waves
    circuit = {s["metric"]["upstream"]: float(s["value"][1])
               for s in prom.query("max by (upstream) (gateway_upstream_circuit_state)")}
    assert circuit["broken"] == 2 and circuit["backend"] == 0
    texts = prom.query("sum by (job) (ml_texts_processed_total)")
    assert {s["metric"]["job"]: float(s["value"][1]) for s in texts} == {
        "sentiment": 5 * waves, "classify": 10 * waves}
    reloads = prom.query("sum by (result) (gateway_config_reloads_total)")
    assert {s["metric"]["result"]: float(s["value"][1]) for s in reloads} == {
        "success": 1, "failure": 1}
