"""Fixtures for the auth tests: a config with scoped routes and tenants, the CLI, keys."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.auth.api_keys import ApiKeyRecord, issue_key
from gateway.auth.key_store import FileKeyStore
from gateway.cli import main as cli_main
from tests.conftest import write_routes

TENANTS = {
    "demo": {"name": "Demo", "routes": ["sentiment", "classify"]},
    "limited": {"routes": ["sentiment"]},
    "everything": {"routes": ["*"]},
    "off": {"enabled": False},
}


def write_auth_config(tmp_path: Path, upstream_url: str,
                      tenants: dict[str, Any] | None = None) -> None:
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": upstream_url}]}}, [
        {"name": "sentiment", "match": {"path": "/v1/sentiment", "methods": ["POST"]},
         "upstream": "main", "scopes": ["sentiment"]},
        {"name": "classify", "match": {"path": "/v1/classify", "methods": ["POST"]},
         "upstream": "main", "scopes": ["classify"]},
        {"name": "status", "match": {"prefix": "/v1/status"}, "upstream": "main"},
        {"name": "open", "match": {"prefix": "/public"}, "upstream": "main", "public": True},
    ])
    write_tenants(tmp_path, tenants or TENANTS)


def write_tenants(tmp_path: Path, tenants: dict[str, Any]) -> None:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "tenants.yaml").write_text(
        yaml.safe_dump({"version": 1, "tenants": tenants}))


@pytest.fixture
def auth_config(tmp_path: Path, backend: Any) -> Path:
    write_auth_config(tmp_path, backend.url)
    return tmp_path


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> Callable[..., str]:
    """Run `gateway ...` in-process against tmp_path's config and data dir; stdout back."""
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))

    def run(*args: str, ok: bool = True) -> str:
        capsys.readouterr()
        code = cli_main(list(args))
        out = capsys.readouterr()
        assert (code == 0) == ok, out.err
        return _without_log_lines(out.out if ok else out.err)

    return run


# A gateway serving from a thread of this process logs to the same captured stdout.
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[.*\n?", re.MULTILINE)


def _without_log_lines(text: str) -> str:
    return _LOG_LINE.sub("", text)


def put_key_record(data_dir: Path, record: ApiKeyRecord) -> None:
    asyncio.run(FileKeyStore(data_dir / "credentials.json").put_key(record))


def make_key(data_dir: Path, tenant: str, **kw: Any) -> tuple[str, ApiKeyRecord]:
    """A key written straight to the file store (for states the CLI would refuse)."""
    key, record = issue_key(tenant, **kw)
    put_key_record(data_dir, record)
    return key, record


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def wait_status(client: httpx.Client, status: int, path: str, headers: dict[str, str],
                within: float = 1.0, method: str = "POST") -> float:
    """Poll until `path` answers `status`; return how long it took (fails past `within`)."""
    start = time.monotonic()
    while True:
        r = client.request(method, path, headers=headers, json={"text": "x"})
        elapsed = time.monotonic() - start
        if r.status_code == status:
            return elapsed
        assert elapsed < within, f"still {r.status_code} after {elapsed:.2f}s"
        time.sleep(0.02)


@pytest.fixture
def redis_env(redis_server: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for GatewayProcess / the CLI sharing one real Redis."""
    yield {
        "GATEWAY_REDIS_URL": redis_server.url,
        "GATEWAY_ROUTES_FILE": str(tmp_path / "routes.yaml"),
        "GATEWAY_POLICIES_DIR": str(tmp_path / "policies"),
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_LOG_FORMAT": "json",
    }
