"""The `gateway` command as an operator runs it: serve with several workers."""

from __future__ import annotations

import httpx

from tests.conftest import write_routes
from tests.processes import GatewayProcess


def test_serve_with_two_workers_proxies(tmp_path, backend):
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": backend.url}]}},
                 [{"name": "echo", "match": {"prefix": "/api"}, "upstream": "main",
                   "rewrite": "/", "public": True}])
    gw = GatewayProcess({"GATEWAY_WORKERS": "2", "GATEWAY_DATA_DIR": str(tmp_path / "data"),
                         "GATEWAY_ROUTES_FILE": str(tmp_path / "routes.yaml"),
                         "GATEWAY_POLICIES_DIR": str(tmp_path / "policies")}, tmp_path)
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
