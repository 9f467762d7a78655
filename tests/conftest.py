"""Shared fixtures: real backends and a real gateway on loopback, config in a temp dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.app import create_app
from gateway.settings import Settings
from tests.servers import Backend, DroppingServer, ThreadedServer, free_port


@pytest.fixture(autouse=True)
def _no_gateway_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GATEWAY_* variable or .env of the developer's leaks into a test."""
    import os

    for key in list(os.environ):
        if key.startswith("GATEWAY_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def backend() -> Iterator[Backend]:
    b = Backend("primary").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def backend_b() -> Iterator[Backend]:
    b = Backend("secondary").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def dropping() -> Iterator[DroppingServer]:
    d = DroppingServer().start()
    yield d
    d.stop()


@pytest.fixture
def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def write_routes(path: Path, upstreams: dict[str, Any], routes: list[dict[str, Any]],
                 **extra: Any) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "upstreams": upstreams, "routes": routes,
                                    **extra}, sort_keys=False))
    return path


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "routes_file": tmp_path / "routes.yaml",
        "policies_dir": tmp_path / "policies",
        "data_dir": tmp_path / "data",
        "reload_interval": 0.05,
        "access_log": False,
    }
    values.update(overrides)
    return Settings(**values)


class RunningGateway:
    def __init__(self, server: ThreadedServer, app: Any):
        self.server, self.app = server, app
        self.url = server.url
        self.client = httpx.Client(base_url=server.url, timeout=10)

    @property
    def holder(self) -> Any:
        return self.app.holder


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., RunningGateway]]:
    """Start a gateway on a free port with tmp_path/routes.yaml (write it first)."""
    started: list[RunningGateway] = []

    def start(**overrides: Any) -> RunningGateway:
        settings = make_settings(tmp_path, **overrides)
        app = create_app(settings)
        gw = RunningGateway(ThreadedServer(app).start(), app)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.client.close()
        gw.server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A throwaway real Redis for this test (see tests/processes.py)."""
    from tests.processes import RedisServer

    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
