"""What single-policy tests run on: a config from YAML text, a request context, and a
fake transport under the real upstream client (no sockets anywhere)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from gateway.config import load_config
from gateway.config.runtime import RuntimeConfig
from gateway.context import Principal, RequestContext
from gateway.proxy_response import ProxyResponse
from gateway.transport import UpstreamRequest

Handler = Callable[[UpstreamRequest], Awaitable[ProxyResponse]]


class FakeTransport:
    """Answers each attempt with `handler` (which may raise AttemptFailed); keeps them."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.sent: list[UpstreamRequest] = []
        self.closed = False

    async def send(self, request: UpstreamRequest) -> ProxyResponse:
        self.sent.append(request)
        return await self.handler(request)

    async def aclose(self) -> None:
        self.closed = True


def answer(status: int = 200, body: bytes = b"ok", **headers: str) -> Handler:
    """A handler that always answers `status` with `body`."""
    async def handle(request: UpstreamRequest) -> ProxyResponse:
        return ProxyResponse(status, [(k.replace("_", "-").encode(), v.encode())
                                      for k, v in headers.items()], body=body)
    return handle


def config(tmp_path: Path, routes: list[dict[str, Any]], upstreams: dict[str, Any] | None = None,
           tiers: dict[str, Any] | None = None, tenants: dict[str, Any] | None = None
           ) -> RuntimeConfig:
    """Load a config the way the gateway does, from files written here."""
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({
        "version": 1, "routes": routes,
        "upstreams": upstreams or {"main": {"targets": [{"url": "http://main.test"}]}},
    }))
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "tiers.yaml").write_text(yaml.safe_dump({"version": 1, "tiers": tiers or {}}))
    (policies / "tenants.yaml").write_text(yaml.safe_dump({
        "version": 1, "tenants": tenants or {}}))
    return load_config(tmp_path / "routes.yaml", policies)


def context(cfg: RuntimeConfig, path: str, method: str = "GET", tenant: str | None = None,
            headers: dict[str, str] | None = None, scopes: frozenset[str] = frozenset({"*"}),
            body: bytes | None = None) -> RequestContext:
    """The context the proxy would build for this request (the route matched by path)."""
    route, params = cfg.router.match(method, path)
    ctx = RequestContext(
        request_id="req-1", config=cfg, route=route, path_params=params, method=method,
        path=path, query=b"", client_ip="127.0.0.1", started=0.0, body=body,
        headers=[(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()])
    if tenant is not None:
        ctx.principal = Principal(tenant_id=tenant, credential_id="key-1", kind="api_key",
                                  scopes=scopes)
    return ctx
