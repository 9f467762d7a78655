"""End to end: a real gateway over HTTP in front of real backends on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import write_routes


def echo_routes(tmp_path: Path, url: str, **route: Any) -> None:
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": url}]}},
                 [{"name": "echo", "match": {"prefix": "/api"}, "upstream": "main",
                   "rewrite": "/", "public": True, **route}])


def test_forwards_request_and_rewrites_path(tmp_path, backend, start_gateway):
    echo_routes(tmp_path, backend.url)
    gw = start_gateway()
    r = gw.client.post("/api/items/7?x=1", json={"a": 1},
                       headers={"Authorization": "Bearer client-secret",
                                "X-API-Key": "k", "X-Tenant-ID": "spoofed",
                                "Connection": "keep-alive, X-Drop-Me", "X-Drop-Me": "1",
                                "X-Forwarded-For": "10.0.0.9", "X-Custom": "kept"})
    assert r.status_code == 200
    seen = r.json()
    assert seen["path"] == "/items/7" and seen["query"] == "x=1"
    assert seen["body"] == '{"a":1}'
    h = seen["headers"]
    # Credentials and spoofable identity never reach the upstream; hop-by-hop is dropped.
    for name in ("authorization", "x-api-key", "x-tenant-id", "x-drop-me"):
        assert name not in h
    assert h["x-custom"] == "kept"
    assert h["x-forwarded-for"] == "10.0.0.9, 127.0.0.1"
    assert h["x-request-id"] == r.headers["x-request-id"]
    assert h["traceparent"].startswith("00-") and len(h["traceparent"]) == 55
    assert r.headers["x-backend"] == "primary"


def test_request_id_kept_when_sane_and_replaced_when_not(tmp_path, backend, start_gateway):
    echo_routes(tmp_path, backend.url)
    gw = start_gateway()
    r = gw.client.get("/api/x", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["headers"]["x-request-id"] == "abc-123"
    r = gw.client.get("/api/x", headers={"X-Request-ID": "x" * 129})
    assert r.headers["x-request-id"] != "x" * 129 and len(r.headers["x-request-id"]) == 32


def test_traceparent_continued(tmp_path, backend, start_gateway):
    echo_routes(tmp_path, backend.url)
    gw = start_gateway()
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    sent = gw.client.get("/api/x", headers={"traceparent": incoming}).json()["headers"]
    _version, trace_id, span_id, flags = sent["traceparent"].split("-")
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and flags == "01"
    assert span_id != "00f067aa0ba902b7"  # the gateway is a hop of its own


def test_unknown_path_and_method_are_problems(tmp_path, backend, start_gateway):
    echo_routes(tmp_path, backend.url, match={"prefix": "/api", "methods": ["GET"]})
    gw = start_gateway()
    r = gw.client.get("/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 404 and body["request_id"] == r.headers["x-request-id"]
    assert set(body) == {"type", "title", "status", "detail", "request_id"}
    r = gw.client.post("/api/x")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.headers["content-type"] == "application/problem+json"


def test_body_limit_413_declared_and_streamed(tmp_path, backend, start_gateway):
    echo_routes(tmp_path, backend.url, max_body_bytes=1000)
    gw = start_gateway()
    before = backend.hits["/big"]
    r = gw.client.post("/api/big", content=b"x" * 1001)
    assert r.status_code == 413 and r.json()["status"] == 413

    def chunks():
        for _ in range(10):
            yield b"y" * 500

    r = gw.client.post("/api/big", content=chunks())  # chunked: no declared length
    assert r.status_code == 413
    assert gw.client.post("/api/big", content=b"x" * 1000).status_code == 200
    assert backend.hits["/big"] - before <= 2  # the declared-too-large one never went up


def test_sse_events_arrive_before_upstream_finishes(tmp_path, backend, start_gateway):
    echo_routes(tmp_path, backend.url)
    gw = start_gateway()
    arrivals = []
    start = time.monotonic()
    with gw.client.stream("GET", "/api/sse?n=4&gap=0.4") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == 4
    # The stream takes ~1.2 s upstream; the first event must not wait for the end.
    assert arrivals[0] < 0.6 < arrivals[-1]


def test_readyz_and_healthz(tmp_path, backend, start_gateway):
    echo_routes(tmp_path, backend.url)
    gw = start_gateway()
    assert gw.client.get("/healthz").json() == {"status": "ok"}
    r = gw.client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["config"]["ok"] is True


def test_never_forwards_client_credentials_even_streamed(tmp_path, backend, start_gateway):
    echo_routes(tmp_path, backend.url)
    gw = start_gateway()
    r = httpx.post(gw.url + "/api/up", content=iter([b"a" * 70_000, b"b" * 70_000]),
                   headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200
    seen = r.json()
    assert "authorization" not in seen["headers"]
    assert len(seen["body"]) == 140_000
