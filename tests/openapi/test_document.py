"""The OpenAPI document: valid 3.1, complete for the config, served cacheable, reloaded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import validate

from gateway.config import load_config
from gateway.openapi.components import GATEWAY_STATUSES
from gateway.openapi.document import build_document
from tests.conftest import write_routes

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://gateway.example"


def shipped() -> dict[str, Any]:
    return build_document(load_config(ROOT / "routes.yaml", ROOT / "policies"), BASE)


def test_the_shipped_config_gives_a_valid_openapi_31_document() -> None:
    doc = shipped()
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": BASE}]


def test_every_shipped_route_is_documented_with_its_schemas_and_security() -> None:
    doc = shipped()
    op = doc["paths"]["/v1/sentiment"]["post"]
    assert set(doc["paths"]["/v1/sentiment"]) == {"post"}
    assert op["security"] == [{"apiKeyBearer": []}, {"apiKeyHeader": []},
                              {"oauth2": ["sentiment"]}]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SentimentRequest"}
    schemas = doc["components"]["schemas"]
    # The service's own published schema, embedded whole.
    published = json.loads((ROOT / "ml_services/schemas/sentiment.json").read_text())
    assert schemas["SentimentRequest"] == published["$defs"]["request"]
    assert schemas["SentimentResponse"] == published["$defs"]["response"]
    assert schemas["ClassifyResponse"]["properties"]["task"] == {"const": "moderation"}
    ok = op["responses"]["200"]
    assert {"X-Request-ID", "RateLimit-Limit", "RateLimit-Remaining",
            "RateLimit-Reset"} <= set(ok["headers"])
    for status in (401, 403, 413, 429, 502, 503, 504):
        assert str(status) in op["responses"], status
    assert "X-Request-ID" in [p["name"] for p in op["parameters"]]


def test_auth_schemes_name_the_token_url_and_every_scope() -> None:
    schemes = shipped()["components"]["securitySchemes"]
    assert schemes["apiKeyBearer"] == {**schemes["apiKeyBearer"], "type": "http",
                                       "scheme": "bearer"}
    assert schemes["apiKeyHeader"]["name"] == "X-API-Key"
    flow = schemes["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == BASE + "/oauth/token"
    assert set(flow["scopes"]) == {"sentiment", "classify", "embeddings", "intent"}


def test_problem_schema_and_every_contract_status_and_header() -> None:
    comp = shipped()["components"]
    assert set(comp["schemas"]["Problem"]["required"]) == {
        "type", "title", "status", "detail", "request_id"}
    statuses = set(GATEWAY_STATUSES)
    assert {400, 401, 403, 404, 405, 413, 429, 502, 503, 504} <= statuses
    for response in comp["responses"].values():
        assert set(response["content"]) == {"application/problem+json"}
    assert "Retry-After" in comp["responses"]["RateLimited"]["headers"]
    assert "Retry-After" in comp["responses"]["ServiceUnavailable"]["headers"]
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After",
            "X-Request-ID", "X-Cache"} <= set(comp["headers"])


def test_control_endpoints_are_documented_and_public() -> None:
    paths = shipped()["paths"]
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/oauth/token",
                 "/.well-known/jwks.json", "/.well-known/oauth-authorization-server"):
        (op,) = paths[path].values()
        assert op["security"] in ([], [{"oauthClientBasic": []}, {}]), path
    token = paths["/oauth/token"]["post"]
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]


def _routes(tmp_path: Path, **route: Any) -> Path:
    return write_routes(tmp_path / "routes.yaml", {"u": {"targets": [{"url": "http://127.0.0.1:9"}]}},
                        [{"name": "r", "match": {"path": "/r"}, "upstream": "u", **route}])


def test_templates_prefixes_public_and_cached_routes(tmp_path: Path) -> None:
    write_routes(tmp_path / "routes.yaml", {"u": {"targets": [{"url": "http://127.0.0.1:9"}]}}, [
        {"name": "item", "match": {"path": "/items/{item_id}", "methods": ["GET", "PUT"]},
         "upstream": "u", "cache": {"ttl": 5}},
        {"name": "files", "match": {"prefix": "/files"}, "upstream": "u", "public": True},
    ])
    doc = build_document(load_config(tmp_path / "routes.yaml"), BASE)
    validate(doc)
    get = doc["paths"]["/items/{item_id}"]["get"]
    assert get["parameters"][0] == {"name": "item_id", "in": "path", "required": True,
                                    "schema": {"type": "string", "pattern": "^[^/]+$"}}
    assert "X-Cache" in get["responses"]["default"]["headers"]
    assert "requestBody" in doc["paths"]["/items/{item_id}"]["put"]
    assert doc["paths"]["/files"]["get"]["security"] == []
    assert "401" not in doc["paths"]["/files/{path}"]["get"]["responses"]
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_a_route_schema_from_a_relative_file_or_inline(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "echo.yaml").write_text(yaml.safe_dump(
        {"defs": {"in": {"type": "object", "properties": {"q": {"type": "string"}}}}}))
    _routes(tmp_path, openapi={
        "summary": "Echo", "request": {"$ref": "schemas/echo.yaml#/defs/in"},
        "response": {"type": "object", "properties": {
            "error": {"$ref": "#/components/schemas/Problem"}}}})
    doc = build_document(load_config(tmp_path / "routes.yaml"), BASE)
    validate(doc)
    assert doc["components"]["schemas"]["RRequest"]["properties"] == {"q": {"type": "string"}}
    assert doc["paths"]["/r"]["post"]["summary"] == "Echo"


@pytest.mark.parametrize(("schema", "message"), [
    ({"$ref": "missing.json"}, "cannot read schema file"),
    ({"$ref": "package:no_such_pkg/x.json"}, "no installed package 'no_such_pkg'"),
    ({"$ref": "package:ml_services/schemas/sentiment.json#/$defs/nope"}, "has nothing at"),
    ({"$ref": "package:ml_services/schemas/sentiment.json#/$comment"}, "is not a schema object"),
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}}, "must name a document"),
])
def test_a_bad_schema_reference_names_file_line_and_field(tmp_path: Path, schema: Any,
                                                          message: str) -> None:
    from gateway.errors import ConfigError

    path = _routes(tmp_path, openapi={"request": schema})
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.file == str(path) and exc.value.line is not None
    assert exc.value.field == "routes[0].openapi.request"
    assert message in exc.value.message


def test_the_cli_prints_the_document_and_refuses_a_bad_config(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "openapi", "--routes-file",
                          str(ROOT / "routes.yaml"), "--server-url", BASE],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    doc = json.loads(out)
    validate(doc)
    assert "/v1/classify" in doc["paths"]
    bad = _routes(tmp_path, openapi={"request": {"$ref": "nope.json"}})
    run = subprocess.run([sys.executable, "-m", "gateway", "openapi", "--routes-file", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "routes[0].openapi.request" in run.stderr


def test_get_openapi_json_is_public_cacheable_and_built_once_per_config(
        tmp_path, start_gateway, monkeypatch) -> None:
    from gateway.openapi import document

    builds = []
    monkeypatch.setattr(document, "build_document",
                        lambda *a: builds.append(a) or build_document(*a))
    _routes(tmp_path)
    gw = start_gateway()
    first = gw.client.get("/openapi.json")
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    assert first.headers["cache-control"] == "public, no-cache"
    etag = first.headers["etag"]
    validate(first.json())
    again = gw.client.get("/openapi.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert gw.client.get("/openapi.json", headers={"If-None-Match": '"other"'}).status_code == 200
    assert gw.client.get("/openapi.json").content == first.content
    assert len(builds) == 1  # four answers, one build: the stored bytes are served
    assert gw.client.post("/openapi.json").status_code == 405


def test_a_reload_changes_the_document_and_a_schema_file_edit_reloads(tmp_path, start_gateway
                                                                      ) -> None:
    schema = tmp_path / "in.json"
    schema.write_text(json.dumps({"type": "object"}))
    _routes(tmp_path, openapi={"request": {"$ref": "in.json"}})
    gw = start_gateway()
    before = gw.client.get("/openapi.json")
    assert before.json()["components"]["schemas"]["RRequest"] == {"type": "object"}
    schema.write_text(json.dumps({"type": "object", "required": ["q"]}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = gw.client.get("/openapi.json")
        if after.headers["etag"] != before.headers["etag"]:
            break
        time.sleep(0.05)
    assert after.json()["components"]["schemas"]["RRequest"]["required"] == ["q"]
    assert gw.client.get("/openapi.json",
                         headers={"If-None-Match": before.headers["etag"]}).status_code == 200
