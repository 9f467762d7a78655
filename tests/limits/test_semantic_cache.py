"""The semantic cache through a real gateway, with the real embeddings service
(all-MiniLM-L6-v2) computing the vectors, in memory and on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_services.embed import EmbedRunner, EmbedSettings
from ml_services.server import create_app as create_ml_app
from tests.conftest import write_routes
from tests.limits.conftest import write_policies
from tests.servers import ThreadedServer


@pytest.fixture(scope="module")
def embed_service() -> Iterator[str]:
    settings = EmbedSettings(max_wait_ms=0)
    server = ThreadedServer(create_ml_app(EmbedRunner(settings), settings)).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_server").url}


def setup(tmp_path: Path, upstream_url: str, embed_url: str, **semantic: Any) -> None:
    write_routes(tmp_path / "routes.yaml", {
        "main": {"targets": [{"url": upstream_url}]},
        "embed": {"targets": [{"url": embed_url}]},
    }, [{"name": "ask", "match": {"path": "/ask"}, "upstream": "main", "rewrite": "/",
         "cache": {"ttl": 60, "semantic": {"threshold": 0.9, **semantic}}}])
    write_policies(tmp_path / "policies", {"basic": {"rate": "1000/minute"}},
                   {"acme": {"tier": "basic"}, "beta": {"tier": "basic"}})


def test_a_paraphrase_hits_with_its_similarity_and_only_within_the_tenant(
        tmp_path, upstream, embed_service, start_limited, as_tenant, store):
    setup(tmp_path, upstream.url, embed_service)
    gw = start_limited(**store)

    def ask(text: str, tenant: str = "acme", **extra: Any) -> Any:
        return gw.client.post("/ask", json={"text": text, **extra},
                              headers=as_tenant(tenant))

    first = ask("How do I reset my password?")
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    hits = upstream.hits
    near = ask("how can I reset my password")
    assert near.headers["x-cache"] == "HIT-SEMANTIC", near.headers
    assert 0.9 <= float(near.headers["x-cache-similarity"]) < 1.0
    assert near.content == first.content and upstream.hits == hits
    assert ask("How do I reset my password?").headers["x-cache"] == "HIT"  # exact first
    # Below the threshold, another tenant, or another rest-of-body: a miss.
    assert ask("What is the price of the pro plan?").headers["x-cache"] == "MISS"
    assert ask("how can I reset my password", tenant="beta").headers["x-cache"] == "MISS"
    assert ask("how can I reset my password", lang="fr").headers["x-cache"] == "MISS"
    assert upstream.hits == hits + 3
    # A client's no-cache skips both lookups.
    bypass = gw.client.post("/ask", json={"text": "how can I reset my password"},
                            headers={**as_tenant("acme"), "Cache-Control": "no-cache"})
    assert bypass.headers["x-cache"] == "BYPASS"


def test_embeddings_service_down_is_an_ordinary_miss(tmp_path, upstream, refused_url,
                                                      start_limited, as_tenant):
    setup(tmp_path, upstream.url, refused_url)
    gw = start_limited()
    for text in ("How do I reset my password?", "how can I reset my password"):
        r = gw.client.post("/ask", json={"text": text}, headers=as_tenant("acme"))
        assert r.status_code == 200 and r.headers["x-cache"] == "MISS"
    r = gw.client.post("/ask", json={"text": "how can I reset my password"},
                       headers=as_tenant("acme"))
    assert r.headers["x-cache"] == "HIT"  # the exact cache still works


def test_an_unknown_embeddings_group_is_refused_naming_the_field(tmp_path, upstream):
    from gateway.config import ConfigError, load_config

    setup(tmp_path, upstream.url, "http://127.0.0.1:9", upstream="nope")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "routes.yaml", tmp_path / "policies")
    assert "cache.semantic.upstream" in str(caught.value) and "nope" in str(caught.value)
