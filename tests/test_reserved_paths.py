"""The gateway's own paths are its own: a catch-all route can never capture them, and a
route naming one is refused at load, on reload and by `gateway check`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.config.reload import ConfigReloader
from gateway.config.reserved import RESERVED_PATHS
from gateway.config.runtime import ConfigHolder
from gateway.errors import ConfigError
from tests.conftest import write_routes

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ENDPOINTS = {  # path -> methods it takes
    "/healthz": {"GET", "HEAD"}, "/readyz": {"GET", "HEAD"}, "/metrics": {"GET", "HEAD"},
    "/oauth/token": {"POST"}, "/.well-known/jwks.json": {"GET", "HEAD"},
    "/.well-known/oauth-authorization-server": {"GET", "HEAD"},
}
UNCLAIMED = ["/oauth", "/oauth/", "/oauth/authorize", "/.well-known", "/.well-known/x.json"]


def catch_all(tmp_path: Path, upstream: str) -> None:
    """Every path to the backend, under /seen/ so the backend records each one it gets:
    a catch-all prefix, and a one-segment template that would also take /healthz."""
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": upstream}]}}, [
        {"name": "one-segment", "upstream": "main", "public": True,
         "rewrite": "/seen/{name}", "match": {"path": "/{name}", "methods": METHODS}},
        {"name": "everything", "upstream": "main", "public": True, "rewrite": "/seen/",
         "match": {"prefix": "/", "methods": METHODS}},
    ])


def test_a_catch_all_route_cannot_capture_any_reserved_path_by_any_method(
        tmp_path, backend, start_gateway):
    catch_all(tmp_path, backend.url)
    gw = start_gateway()
    before = sum(n for p, n in backend.hits.items() if p.startswith("/seen/"))
    for path, allowed in ENDPOINTS.items():
        for method in METHODS:
            r = gw.client.request(method, path)
            if method in allowed:
                assert r.status_code in (200, 400), (method, path, r.status_code)
                continue
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["content-type"] == "application/problem+json"
            assert set(r.headers["allow"].split(", ")) == allowed
            if method != "HEAD":
                body = r.json()
                assert body["status"] == 405 and body["type"] == "/problems/method-not-allowed"
                assert body["request_id"] == r.headers["x-request-id"]
    for path in UNCLAIMED:
        for method in METHODS:
            r = gw.client.request(method, path)
            assert r.status_code == 404, (method, path, r.status_code)
            assert r.headers["content-type"] == "application/problem+json"
    after = sum(n for p, n in backend.hits.items() if p.startswith("/seen/"))
    assert after == before, "a reserved path reached the upstream"
    # The same route still takes every other path (so the counting above can fail).
    r = gw.client.post("/v1/predict", content=b"{}")
    assert r.status_code == 200 and r.json()["path"] == "/seen/v1/predict"
    assert backend.hits["/seen/v1/predict"] >= 1
    r = gw.client.delete("/healthcheck")
    assert r.status_code == 200 and r.json()["path"] == "/seen/healthcheck"


def test_the_endpoints_answer_as_before_behind_a_catch_all(tmp_path, backend, start_gateway):
    catch_all(tmp_path, backend.url)
    gw = start_gateway()
    assert gw.client.get("/healthz").json() == {"status": "ok"}
    assert gw.client.get("/readyz").json()["checks"]["config"]["ok"] is True
    assert "gateway_requests_total" in gw.client.get("/metrics").text
    assert gw.client.get("/.well-known/jwks.json").json()["keys"]
    r = gw.client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


ROUTE_FILE = """\
version: 1
upstreams:
  main: {targets: [{url: "http://127.0.0.1:9"}]}
routes:
  - name: api
    match: {prefix: /v1/}
    upstream: main
  - name: thief
    match: {%s: %s}
    upstream: main
"""


@pytest.mark.parametrize(("kind", "value", "taken"), [
    ("path", "/healthz", "/healthz"), ("path", "/readyz", "/readyz"),
    ("path", "/metrics", "/metrics"), ("path", "/oauth/token", "/oauth/token"),
    ("path", '"/.well-known/{name}"', "/.well-known/"), ("prefix", "/oauth", "/oauth"),
    ("prefix", "/.well-known/", "/.well-known/"), ("prefix", "/metrics", "/metrics"),
])
def test_a_route_naming_a_reserved_path_is_refused_with_file_line_field(
        tmp_path, kind, value, taken):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTE_FILE % (kind, value))
    with pytest.raises(ConfigError) as info:
        load_config(routes)
    err = info.value
    assert (err.file, err.line, err.field) == (str(routes), 9, f"routes[1].match.{kind}")
    assert f"{taken!r} is reserved" in err.message
    assert all(reserved in err.message for reserved in RESERVED_PATHS)  # names them all


@pytest.mark.parametrize(("kind", "value"), [
    ("prefix", "/"), ("path", '"/{name}"'), ("prefix", "/metrics/"), ("path", "/healthz2"),
    ("prefix", "/oauthx"), ("path", "/v1/oauth/token"),
])
def test_broader_or_neighbouring_routes_are_accepted(tmp_path, kind, value):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTE_FILE % (kind, value))
    assert "thief" in load_config(routes).routes


def test_reload_keeps_the_old_config_when_a_route_takes_a_reserved_path(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTE_FILE % ("prefix", "/v2/"))
    holder = ConfigHolder(load_config(routes))
    reloader = ConfigReloader(holder, routes, tmp_path / "policies", 0.05)
    routes.write_text(ROUTE_FILE % ("path", "/metrics") + "\n")
    assert reloader.check() is False
    assert holder.generation == 1 and holder.current.routes["thief"].prefix == "/v2/"
    assert holder.last_error is not None
    assert holder.last_error.startswith(f"{routes}:9: routes[1].match.path: '/metrics'")


def test_gateway_check_names_the_file_line_and_field(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTE_FILE % ("prefix", "/oauth/"))
    done = subprocess.run([sys.executable, "-m", "gateway", "check", str(routes)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert f"{routes}:9: routes[1].match.prefix: '/oauth/' is reserved" in done.stderr
    assert "Traceback" not in done.stderr
