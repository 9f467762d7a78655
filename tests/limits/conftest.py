"""Fixtures for limits and cache tests: gateways whose requests carry a tenant.

Until authentication lands, the tenant comes from a test-only policy reading
`X-Test-Tenant`, added in front of the real pipeline through create_app's `policies`
factory. Two functions are all that change when real credentials arrive:
`as_tenant(tenant_id)` (the request headers naming a tenant) and `pipeline` (the
policy list the test gateways run).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.app import build_policies, create_app
from gateway.context import Principal, RequestContext
from gateway.pipeline import Policy
from gateway.proxy_response import ProxyResponse
from gateway.settings import Settings
from gateway.stores import Stores
from tests.conftest import RunningGateway, make_settings, write_routes
from tests.processes import GatewayProcess, wait_http
from tests.servers import ThreadedServer

TEST_TENANT_HEADER = b"x-test-tenant"


class HeaderTenantPolicy(Policy):
    """Test only: the tenant named by X-Test-Tenant becomes the principal."""

    name = "test_tenant"

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        tenant = ctx.header(TEST_TENANT_HEADER)
        if tenant:
            ctx.principal = Principal(tenant.decode(), "test-credential", "test")
        return None


def pipeline(settings: Settings, stores: Stores, auth: Any) -> Sequence[Policy]:
    """The pipeline test gateways run: the tenant step, then the real policies."""
    return [HeaderTenantPolicy(), *build_policies(settings, stores, auth)]


def as_tenant(tenant_id: str) -> dict[str, str]:
    """Request headers that make a request come from `tenant_id`."""
    return {"X-Test-Tenant": tenant_id}


def write_policies(policies_dir: Path, tiers: dict[str, Any],
                   tenants: dict[str, Any]) -> None:
    policies_dir.mkdir(parents=True, exist_ok=True)
    (policies_dir / "tiers.yaml").write_text(yaml.safe_dump({"version": 1, "tiers": tiers}))
    (policies_dir / "tenants.yaml").write_text(
        yaml.safe_dump({"version": 1, "tenants": tenants}))


def write_setup(tmp_path: Path, upstream_url: str, tiers: dict[str, Any],
                tenants: dict[str, Any], routes: list[dict[str, Any]] | None = None) -> None:
    """routes.yaml with an `api` prefix route (unless `routes` given) and the policies."""
    if routes is None:
        routes = [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main",
                   "rewrite": "/"}]
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": upstream_url}]}},
                 routes)
    write_policies(tmp_path / "policies", tiers, tenants)


@pytest.fixture
def start_limited(tmp_path: Path) -> Iterator[Callable[..., RunningGateway]]:
    """Like start_gateway, with the tenant step in front of the pipeline."""
    started: list[RunningGateway] = []

    def start(**overrides: Any) -> RunningGateway:
        app = create_app(make_settings(tmp_path, **overrides), policies=pipeline)
        gw = RunningGateway(ThreadedServer(app).start(), app)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.client.close()
        gw.server.stop()


class Upstream:
    """A small backend for cache tests: answers with the Cache-Control it is asked for."""

    def __init__(self) -> None:
        self.hits = 0
        self.app = Starlette(routes=[Route("/{path:path}", self.answer,
                                           methods=["GET", "POST"])])
        self.server = ThreadedServer(self.app).start()
        self.url = self.server.url

    async def answer(self, request: Request) -> Response:
        self.hits += 1
        await request.body()
        delay = float(request.query_params.get("delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        headers = {"X-Hit": str(self.hits)}
        if "cc" in request.query_params:
            headers["Cache-Control"] = request.query_params["cc"]
        status = int(request.query_params.get("status", "200"))
        return Response(f'{{"hit": {self.hits}}}', status, headers,
                        media_type="application/json")


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    u = Upstream()
    yield u
    u.server.stop()


# -- replicas: real gateway processes ---------------------------------------------------

class ReplicaProcess(GatewayProcess):
    """`python -m tests.limits.replica`: the real server with the test tenant step."""

    def start(self) -> ReplicaProcess:
        env = {**self.env, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
        with self.log_path.open("wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.limits.replica"],
                                         env=env, cwd=self.cwd, stdout=log, stderr=log)
        wait_http(self.url + "/healthz", proc=self.proc)
        return self


async def fire(urls: Sequence[str], n: int, path: str, headers: dict[str, str],
               request_timeout: float = 30) -> list[httpx.Response]:
    """Send n requests at once, round-robin over `urls`; all answers, in order."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as client:
        return list(await asyncio.gather(*(
            client.get(urls[i % len(urls)] + path, headers=headers) for i in range(n))))


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
