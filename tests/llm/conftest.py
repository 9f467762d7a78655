"""Fixtures for the OpenAI-compatible routes: two real OpenAI-compatible servers on
loopback (bench/fake_openai.py), a config of llm routes and models, tenants with keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.fake_openai import FakeOpenAI
from tests.conftest import write_routes
from tests.observability.tenants import issue_keys
from tests.servers import ThreadedServer

PROVIDER_KEY = "sk-provider-secret-123456"


class Provider:
    def __init__(self, name: str):
        self.fake = FakeOpenAI(name)
        self.server = ThreadedServer(self.fake.app).start()
        self.url = self.server.url


@pytest.fixture
def providers() -> Iterator[tuple[Provider, Provider]]:
    """`vllm` (self-hosted, no credential) and `openai` (hosted, wants a key)."""
    pair = (Provider("vllm"), Provider("openai"))
    yield pair
    for p in pair:
        p.server.stop()


LLM_ROUTES = [
    {"name": "chat", "match": {"path": "/v1/chat/completions", "methods": ["POST"]},
     "llm": {"api": "chat", "max_tokens": 64}},
    {"name": "completions", "match": {"path": "/v1/completions", "methods": ["POST"]},
     "llm": {"api": "completions"}},
    {"name": "embeddings", "match": {"path": "/v1/embeddings", "methods": ["POST"]},
     "llm": {"api": "embeddings"}},
    {"name": "models", "match": {"path": "/v1/models", "methods": ["GET"]},
     "llm": {"api": "models"}},
    {"name": "model", "match": {"path": "/v1/models/{model}", "methods": ["GET"]},
     "llm": {"api": "models"}},
]
MODELS = {
    "llama-3-8b": {"serve": [{"upstream": "vllm", "model": "meta-llama/Meta-Llama-3-8B"},
                             {"upstream": "openai", "model": "gpt-4o-mini"}],
                   "price": {"prompt": 0.5, "completion": 1.5}},
    "gpt-4o-mini": {"serve": [{"upstream": "openai"}],
                    "price": {"prompt": 0.15, "completion": 0.6}},
    "e5": {"serve": [{"upstream": "vllm", "model": "intfloat/e5-small"}]},
}


def write_llm_config(tmp_path: Path, vllm: str, openai: str,
                     tenants: dict[str, Any] | None = None,
                     tiers: dict[str, Any] | None = None,
                     models: dict[str, Any] | None = None, **extra: Any) -> None:
    write_routes(tmp_path / "routes.yaml", {
        "vllm": {"targets": [{"url": vllm}]},
        "openai": {"targets": [{"url": openai}],
                   "headers": {"Authorization": {"env": "FAKE_OPENAI_KEY",
                                                 "prefix": "Bearer "}}},
    }, LLM_ROUTES, models=models or MODELS, **extra)
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "tenants.yaml").write_text(yaml.safe_dump({"version": 1, "tenants": tenants or {
        "acme": {"tier": "pro"},
        "small": {"tier": "pro", "models": ["llama-3-8b", "e5"]},
    }}))
    (policies / "tiers.yaml").write_text(yaml.safe_dump({"version": 1, "tiers": tiers or {
        "pro": {"rate": "1000/minute"}}}))


@pytest.fixture
def llm_gateway(tmp_path: Path, providers: tuple[Provider, Provider], start_gateway: Any,
                monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Start a gateway over the two providers; returns (gateway, {tenant: key})."""
    monkeypatch.setenv("FAKE_OPENAI_KEY", PROVIDER_KEY)

    def start(tenants: dict[str, Any] | None = None, tiers: dict[str, Any] | None = None,
              models: dict[str, Any] | None = None, **settings: Any
              ) -> tuple[Any, dict[str, str]]:
        write_llm_config(tmp_path, providers[0].url, providers[1].url, tenants, tiers,
                         models)
        names = list(tenants or {"acme": 0, "small": 0})
        # Where the gateway looks: the file store, or Redis when it shares one.
        keys = issue_keys(tmp_path / "data", names, settings.get("redis_url"))
        return start_gateway(**settings), keys

    return start


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
