"""The schemas the bundled services publish (ml_services/schemas/) match what they do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "ml_services" / "schemas"


def validator(service: str, part: str) -> Draft202012Validator:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{service}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema["$defs"][part])


@pytest.mark.parametrize(("service", "task"), [("sentiment", "sentiment"),
                                               ("classify", "moderation")])
@pytest.mark.parametrize("body", [
    {"text": "I love this, it's wonderful!"},
    {"texts": ["you are an idiot", "have a nice day", ""]},
    {"text": "not bad", "task": None},
])
def test_answers_match_the_published_response_schema(request, service, task, body) -> None:
    url = request.getfixturevalue(f"{service}_url")
    assert validator(service, "request").is_valid(body)
    r = httpx.post(url + "/predict", json=body)
    assert r.status_code == 200, r.text
    validator(service, "response").validate(r.json())
    assert r.json()["task"] == task


@pytest.mark.parametrize("service", ["sentiment", "classify"])
@pytest.mark.parametrize("body", [
    {}, {"text": 1}, {"texts": []}, {"text": "a", "texts": ["b"]}, {"text": "a", "x": 1},
    {"text": "a", "task": ""}, {"text": "a", "task": "nope"}, [], "text",
])
def test_bodies_the_request_schema_refuses_the_service_refuses(request, service, body) -> None:
    url = request.getfixturevalue(f"{service}_url")
    assert not validator(service, "request").is_valid(body)
    r = httpx.post(url + "/predict", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("path", "part", "body"), [
    ("/v1/embeddings", "embeddings", {"input": "How do I reset my password?", "user": None}),
    ("/v1/embeddings", "embeddings", {"input": ["a", ""], "encoding_format": "base64"}),
    ("/v1/intent", "intent", {"texts": ["I forgot my password", "nice weather"]}),
])
def test_embed_answers_match_the_published_schemas(embed_url, path, part, body) -> None:
    assert validator("embed", f"{part}_request").is_valid(body)
    r = httpx.post(embed_url + path, json=body)
    assert r.status_code == 200, r.text
    validator("embed", f"{part}_response").validate(r.json())
    models = httpx.get(embed_url + "/v1/models").json()
    validator("embed", "models_response").validate(models)


@pytest.mark.parametrize("body", [
    {}, {"input": 1}, {"input": []}, {"input": [1, 2]}, {"input": "a", "x": 1},
    {"input": "a", "dimensions": 10}, {"input": "a", "encoding_format": "hex"}, [],
])
def test_embedding_bodies_the_schema_refuses_the_service_refuses(embed_url, body) -> None:
    assert not validator("embed", "embeddings_request").is_valid(body)
    r = httpx.post(embed_url + "/v1/embeddings", json=body)
    assert r.status_code == 422, r.text
