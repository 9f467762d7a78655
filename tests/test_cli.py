"""The `gateway` command as an operator runs it: serve with several workers; a bad
setting is one clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import write_routes
from tests.processes import GatewayProcess


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
def test_serve_with_two_workers_proxies(tmp_path, backend, request, shared):
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": backend.url}]}},
                 [{"name": "echo", "match": {"prefix": "/api"}, "upstream": "main",
                   "rewrite": "/", "public": True}])
    env = {"GATEWAY_WORKERS": "2", "GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "GATEWAY_ROUTES_FILE": str(tmp_path / "routes.yaml"),
           "GATEWAY_POLICIES_DIR": str(tmp_path / "policies")}
    if shared:
        env["GATEWAY_REDIS_URL"] = request.getfixturevalue("redis_server").url
    gw = GatewayProcess(env, tmp_path)
    gw.start()
    try:
        with httpx.Client(base_url=gw.url, timeout=5) as c:
            answers = [c.get(f"/api/w{i}") for i in range(20)]
        assert {r.status_code for r in answers} == {200}
        assert all(r.json()["path"].startswith("/w") for r in answers)
    finally:
        gw.stop()
    log = gw.log_path.read_text()
    assert log.count("gateway_started") == 2, log[-2000:]
    # Without Redis each worker counts limits alone: said loudly, once, at start-up.
    assert log.count("workers_without_redis") == (0 if shared else 1)
    assert ("a tenant gets up to 2x its limits" in log) is not shared


@pytest.mark.parametrize(("url", "says"), [
    ("http://cache:6379", "GATEWAY_REDIS_URL must start with redis://"),
    ("redis://:s3cret-pw@cache:6379/0?pool_size=4", "unsupported option(s) pool_size"),
    ("rediss://:s3cret-pw@cache/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be none"),
    ("redis://:s3cret#pw@cache:6379/0", "not a valid Redis URL"),  # '#' not encoded
    ("redis://:s3cret-pw@cache/0?max_connections=8", "max_connections is set by the gateway"),
    ("rediss://:s3cret-pw@cache/0?ssl_min_version=5", "ssl_min_version must be a TLS"),
])
def test_a_bad_redis_url_is_named_without_a_traceback_or_its_secret(tmp_path, url, says):
    done = subprocess.run([sys.executable, "-m", "gateway", "serve"], cwd=tmp_path,
                          env={**os.environ, "GATEWAY_REDIS_URL": url},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert says in done.stderr and "GATEWAY_REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr + done.stdout


def test_a_bad_setting_inside_a_json_value_names_its_place(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gateway", "check"], cwd=tmp_path,
                          env={**os.environ, "GATEWAY_EXTERNAL_ISSUERS": '[{"issuer": 5}]'},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "GATEWAY_EXTERNAL_ISSUERS[0].issuer: Input should be a valid string" in done.stderr
