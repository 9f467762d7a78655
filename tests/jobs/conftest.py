"""Fixtures for the job tests: a gateway in front of the tests' Backend with `async:`
routes, tenants with real API keys (tests/limits/conftest.py's TenantKeys)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway, make_settings, write_routes
from tests.limits.conftest import TenantKeys, tenants_in, write_policies

TIERS = {"standard": {"rate": "100000/minute"}, "small": {"max_queued_jobs": 2}}
TENANTS = {
    "acme": {"tier": "standard",
             "webhooks": {"allowed_urls": ["http://127.0.0.1:1/hooks/"]}},
    "globex": {"tier": "standard"},
    "tiny": {"tier": "small"},
}


def job_routes(upstream_url: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"name": "predict", "match": {"prefix": "/v1/predict"}, "upstream": "main",
         "rewrite": "/", "async": {"result_ttl": 600}, **extra},
        {"name": "batch", "match": {"prefix": "/v1/batch"}, "upstream": "main",
         "rewrite": "/", "async": {"only": True}},
        {"name": "sync", "match": {"prefix": "/v1/sync"}, "upstream": "main",
         "rewrite": "/"},
    ]


def write_job_setup(tmp_path: Path, upstream_url: str, tenants: dict[str, Any] | None = None,
                    routes: list[dict[str, Any]] | None = None) -> None:
    write_routes(tmp_path / "routes.yaml", {"main": {
        "targets": [{"url": upstream_url}], "circuit_breaker": {"failures": 100_000}}},
        routes or job_routes(upstream_url))
    write_policies(tmp_path / "policies", TIERS, tenants or TENANTS)


@pytest.fixture
def tenant_keys() -> TenantKeys:
    return TenantKeys()


@pytest.fixture
def start_jobs(tmp_path: Path, tenant_keys: TenantKeys,
               start_gateway: Callable[..., RunningGateway]) -> Callable[..., RunningGateway]:
    """A gateway (in-process job workers by default) with a key for every tenant."""

    def start(**overrides: Any) -> RunningGateway:
        settings = make_settings(tmp_path, **overrides)
        tenant_keys.write(tenants_in(settings.policies_dir), settings.data_dir,
                          settings.redis_url)
        return start_gateway(**overrides)

    return start


def wait_job(client: httpx.Client, location: str, headers: dict[str, str],
             timeout: float = 10.0, until: tuple[str, ...] = ("succeeded", "failed",
                                                               "cancelled")) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(location, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in until:
            return body
        assert r.headers["retry-after"] == "1"
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {body['status']}")
        time.sleep(0.02)


@pytest.fixture
def as_tenant(tenant_keys: TenantKeys) -> Callable[[str], dict[str, str]]:
    return tenant_keys.as_tenant
