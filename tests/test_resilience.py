"""Retries, fallbacks, timeouts, circuits, health checks and shadow traffic, end to end
against real servers on 127.0.0.1: healthy, slow, failing, dropping and refusing ones."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import write_routes


def route(**kw: Any) -> dict[str, Any]:
    base = {"name": "r", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/",
            "public": True}
    return {**base, **kw}


def setup(tmp_path: Path, groups: dict[str, list[str]], **kw: Any) -> None:
    upstreams = {n: {"targets": [{"url": u} for u in urls]} for n, urls in groups.items()}
    for name, extra in kw.pop("group_extra", {}).items():
        upstreams[name].update(extra)
    write_routes(tmp_path / "routes.yaml", upstreams, [route(**kw)])


def test_retry_on_listed_status_then_success(tmp_path, backend, start_gateway):
    setup(tmp_path, {"main": [backend.url]},
          retry={"attempts": 2, "backoff": 0.01, "on_status": [503]})
    gw = start_gateway()
    backend.fail_next = 2
    before = backend.hits["/flaky1"]
    r = gw.client.get("/api/flaky1")
    assert r.status_code == 200
    assert backend.hits["/flaky1"] - before == 3


def test_no_retry_for_post_unless_allowed(tmp_path, backend, start_gateway):
    setup(tmp_path, {"main": [backend.url]},
          retry={"attempts": 2, "backoff": 0.01, "on_status": [503]})
    gw = start_gateway()
    backend.fail_next = 1
    before = backend.hits["/flaky2"]
    r = gw.client.post("/api/flaky2", content=b"{}")
    assert r.status_code == 502 and r.headers["content-type"] == "application/problem+json"
    assert backend.hits["/flaky2"] - before == 1
    backend.fail_next = 0


def test_retry_budget_exhausted_gives_502(tmp_path, backend, start_gateway):
    setup(tmp_path, {"main": [backend.url]},
          retry={"attempts": 1, "backoff": 0.01, "on_status": [500]})
    gw = start_gateway()
    before = backend.hits["/status/500"]
    r = gw.client.get("/api/status/500")
    assert r.status_code == 502
    assert "500" in r.json()["detail"]
    assert backend.hits["/status/500"] - before == 2


def test_connection_refused_retries_even_post_and_falls_back(
        tmp_path, backend_b, refused_url, start_gateway):
    setup(tmp_path, {"main": [refused_url], "backup": [backend_b.url]},
          fallbacks=["backup"], retry={"attempts": 1, "backoff": 0.01})
    gw = start_gateway()
    r = gw.client.post("/api/fb", json={"x": 1})
    assert r.status_code == 200
    assert r.json()["backend"] == "secondary" and r.json()["body"] == '{"x":1}'


def test_refused_without_fallback_is_502(tmp_path, refused_url, start_gateway):
    setup(tmp_path, {"main": [refused_url]})
    gw = start_gateway()
    r = gw.client.get("/api/x")
    assert r.status_code == 502 and r.json()["status"] == 502


def test_dropped_connection_is_502_and_retried_when_allowed(tmp_path, dropping, start_gateway):
    setup(tmp_path, {"main": [dropping.url]}, retry={"attempts": 2, "backoff": 0.01})
    gw = start_gateway()
    before = dropping.hits
    assert gw.client.get("/api/x").status_code == 502
    assert dropping.hits - before == 3


def test_timeout_gives_504_and_is_not_retried_for_post(tmp_path, backend, start_gateway):
    setup(tmp_path, {"main": [backend.url]}, timeout={"connect": 1, "total": 0.3},
          retry={"attempts": 2, "backoff": 0.01})
    gw = start_gateway()
    before = backend.hits["/slow"]
    start = time.monotonic()
    r = gw.client.post("/api/slow?delay=2", content=b"x")
    assert r.status_code == 504 and r.json()["status"] == 504
    assert time.monotonic() - start < 1.5
    assert backend.hits["/slow"] - before == 1


def test_timeout_falls_back_for_allowed_methods(tmp_path, backend, backend_b, start_gateway):
    setup(tmp_path, {"main": [backend.url], "backup": [backend_b.url]},
          fallbacks=["backup"], timeout={"connect": 1, "total": 0.3})
    gw = start_gateway()
    r = gw.client.get("/api/slow?delay=0.6")
    # The backup is slow too for this path, so use a path only the primary stalls on.
    assert r.status_code == 504
    r = gw.client.get("/api/anything")
    assert r.status_code == 200 and r.json()["backend"] == "primary"


def test_open_circuit_gives_503_then_closes_after_good_probe(
        tmp_path, dropping, start_gateway):
    from tests.servers import Backend

    # A target that fails, then recovers on the same port.
    setup(tmp_path, {"main": [dropping.url]},
          group_extra={"main": {"circuit_breaker": {"failures": 2, "cooldown": 0.5}}})
    gw = start_gateway()
    assert gw.client.get("/api/a").status_code == 502
    assert gw.client.get("/api/a").status_code == 502
    before = dropping.hits
    r = gw.client.get("/api/a")
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert dropping.hits == before  # the open circuit kept the request off the target
    # Point the group at a healthy server with the same breaker state: swap the target.
    healthy = Backend("recovered").start()
    try:
        health = gw.app.target_health
        health.states[healthy.url] = health.states[dropping.url]
        setup(tmp_path, {"main": [healthy.url]},
              group_extra={"main": {"circuit_breaker": {"failures": 2, "cooldown": 0.5}}})
        _wait_for(lambda: gw.holder.current.groups["main"].targets[0].url == healthy.url)
        assert gw.client.get("/api/a").status_code == 503  # still cooling down
        time.sleep(0.6)
        assert gw.client.get("/api/a").status_code == 200  # the probe
        assert health.circuit_state(healthy.url) == "closed"
        assert gw.client.get("/api/a").status_code == 200
    finally:
        healthy.stop()


def test_active_health_check_takes_target_out_and_back(
        tmp_path, backend, backend_b, start_gateway):
    setup(tmp_path, {"main": [backend.url, backend_b.url]},
          group_extra={"main": {"health_check": {"path": "/healthz", "interval": 0.1,
                                                 "unhealthy_threshold": 1}}})
    gw = start_gateway()
    backend_b.healthy = False
    try:
        _wait_for(lambda: not gw.app.target_health.usable(backend_b.url))
        seen = {gw.client.get("/api/hc").json()["backend"] for _ in range(30)}
        assert seen == {"primary"}
    finally:
        backend_b.healthy = True
    _wait_for(lambda: gw.app.target_health.usable(backend_b.url))
    seen = {gw.client.get("/api/hc").json()["backend"] for _ in range(60)}
    assert seen == {"primary", "secondary"}


def test_shadow_gets_a_copy_without_touching_the_answer(
        tmp_path, backend, backend_b, start_gateway):
    setup(tmp_path, {"main": [backend.url], "candidate": [backend_b.url]},
          shadow={"upstream": "candidate"})
    gw = start_gateway()
    before = backend_b.hits["/slow"]
    start = time.monotonic()
    r = gw.client.post("/api/slow?delay=0", json={"q": 1})
    assert r.status_code == 200 and r.json()["backend"] == "primary"
    assert time.monotonic() - start < 0.5
    _wait_for(lambda: backend_b.hits["/slow"] == before + 1)
    assert backend_b.requests[-1]["body"] == '{"q":1}'


def test_slow_or_failing_shadow_never_delays_or_fails_the_client(
        tmp_path, backend, dropping, start_gateway):
    setup(tmp_path, {"main": [backend.url], "candidate": [dropping.url]},
          shadow={"upstream": "candidate"})
    gw = start_gateway()
    for _ in range(5):
        r = gw.client.get("/api/x")
        assert r.status_code == 200 and r.json()["backend"] == "primary"


def test_config_edit_under_load_loses_no_request(tmp_path, backend, backend_b, start_gateway):
    setup(tmp_path, {"main": [backend.url]})
    gw = start_gateway()
    stop = threading.Event()
    results: list[int] = []
    backends: set[str] = set()

    def load() -> None:
        with httpx.Client(base_url=gw.url, timeout=5) as c:
            while not stop.is_set():
                r = c.get("/api/load")
                results.append(r.status_code)
                if r.status_code == 200:
                    backends.add(r.json()["backend"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    def served_more(n: int) -> None:
        # Phases end after enough requests, not after a fixed time: a loaded machine
        # serves fewer per second, and each phase must still see real traffic.
        target = len(results) + n
        _wait_for(lambda: len(results) >= target, timeout=30.0)

    try:
        served_more(20)
        generation = gw.holder.generation
        setup(tmp_path, {"main": [backend_b.url]})  # good edit: switch upstream
        _wait_for(lambda: gw.holder.generation > generation, timeout=5.0)
        served_more(20)
        (tmp_path / "routes.yaml").write_text("routes: [this is: not valid")  # broken edit
        # write_text truncates first: a poll may see the empty file (a failure of its
        # own) before the broken text, so wait for the broken text's failure.
        _wait_for(lambda: "routes.yaml:1" in (gw.holder.last_error or ""), timeout=5.0)
        served_more(20)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(results) >= 60
    assert set(results) == {200}, {s: results.count(s) for s in set(results)}
    assert backends == {"primary", "secondary"}
    # The broken edit changed nothing: the last good config still routes to secondary.
    assert gw.client.get("/api/after").json()["backend"] == "secondary"
    assert "routes.yaml:1" in gw.holder.last_error


def _wait_for(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
