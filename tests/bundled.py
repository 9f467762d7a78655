"""A real gateway process in front of the real bundled inference services.

`BundledGateway` starts `python -m ml_services.sentiment`, `.classify` and `.embed` on free
ports,
writes the shipped routes.yaml with their addresses (plus any extra upstreams and routes
a test adds), policies with the tenants asked for, issues each tenant an API key and an
OAuth2 client into the store the gateway opens, then runs `python -m gateway serve`.
Used by the schemathesis run and the PHP client's suite.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.auth.api_keys import issue_key
from gateway.auth.key_store import open_key_store
from gateway.auth.oauth_clients import issue_client
from tests.observability.stack import ROOT, ServiceProcess
from tests.observability.tenants import write_policies
from tests.processes import GatewayProcess

SHIPPED_ROUTES = ROOT / "routes.yaml"


@dataclass
class Credentials:
    """One tenant's API key and OAuth2 client (id and secret)."""

    api_key: str
    client_id: str
    client_secret: str


@dataclass
class BundledGateway:
    workdir: Path
    tenants: dict[str, Any]  # as in policies/tenants.yaml
    tiers: dict[str, Any] = field(default_factory=dict)
    upstreams: dict[str, Any] = field(default_factory=dict)  # more upstream groups
    routes: list[dict[str, Any]] = field(default_factory=list)  # more routes, after shipped
    env: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, Credentials] = field(default_factory=dict)
    services: list[ServiceProcess] = field(default_factory=list)
    gateway: GatewayProcess | None = None

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    def _write_routes(self, sentiment: str, classify: str, embed: str) -> Path:
        doc = yaml.safe_load(SHIPPED_ROUTES.read_text())
        doc["upstreams"]["sentiment"]["targets"] = [{"url": sentiment}]
        doc["upstreams"]["classify"]["targets"] = [{"url": classify}]
        doc["upstreams"]["embed"]["targets"] = [{"url": embed}]
        doc["upstreams"].update(self.upstreams)
        doc["routes"] += self.routes
        path = self.workdir / "routes.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def _issue(self, data_dir: Path) -> None:
        async def issue() -> None:
            store = open_key_store(data_dir, None)
            for tenant in self.tenants:
                key, record = issue_key(tenant, name="bundled test")
                await store.put_key(record)
                scopes = ("sentiment", "classify", "embeddings", "intent",
                          *self.tenants[tenant].get("scopes", ()))
                secret, client = issue_client(tenant, tuple(dict.fromkeys(scopes)))
                await store.put_client(client)
                self.credentials[tenant] = Credentials(key, client.client_id, secret)
            await store.close()

        asyncio.run(issue())

    def start(self) -> BundledGateway:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.services = [ServiceProcess(m, self.workdir).start()
                         for m in ("ml_services.sentiment", "ml_services.classify",
                                   "ml_services.embed")]
        for service in self.services:
            service.wait()
        routes = self._write_routes(*(service.url for service in self.services))
        tenants = {t: {k: v for k, v in spec.items() if k != "scopes"}
                   for t, spec in self.tenants.items()}
        write_policies(self.workdir / "policies", tenants, self.tiers or None)
        data_dir = self.workdir / "data"
        self._issue(data_dir)
        self.gateway = GatewayProcess({
            "GATEWAY_ROUTES_FILE": str(routes),
            "GATEWAY_POLICIES_DIR": str(self.workdir / "policies"),
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_ACCESS_LOG": "false",
            "GATEWAY_LOG_FORMAT": "json",
            **self.env,
        }, self.workdir)
        # The issuer is the address clients use: the gateway's own port.
        self.gateway.env.setdefault("GATEWAY_TOKEN_ISSUER", self.gateway.url)
        self.gateway.start()
        return self

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for service in self.services:
            service.stop()
