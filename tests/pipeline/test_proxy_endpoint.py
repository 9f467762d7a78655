"""The proxy endpoint is whole once constructed: no lifespan needs to fill anything in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.config.runtime import ConfigHolder
from gateway.proxy import ProxyEndpoint
from gateway.upstream import UpstreamClient
from gateway.upstream_health import TargetHealth
from tests.pipeline.fakes import FakeTransport, answer, config


async def call(app: Any, method: str, path: str, body: bytes = b"") -> list[dict[str, Any]]:
    """One raw ASGI request; the messages the app sent back."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": method, "path": path, "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 5000),
             "state": {"request_id": "req-9"}}
    await app(scope, receive, send)
    return sent


def test_the_proxy_answers_its_first_request_without_a_lifespan(tmp_path: Path) -> None:
    cfg = config(tmp_path, [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main",
                             "public": True}])
    transport = FakeTransport(answer(201, b"made"))
    proxy = ProxyEndpoint(ConfigHolder(cfg), [], UpstreamClient(TargetHealth(), transport))
    start, body = asyncio.run(call(proxy, "POST", "/api/things", b"{}"))
    assert start["status"] == 201 and body["body"] == b"made"
    assert transport.sent[0].url == "http://main.test/api/things"
    assert transport.sent[0].body == b"{}"
    start, body = asyncio.run(call(proxy, "GET", "/elsewhere"))
    assert start["status"] == 404
    assert (b"content-type", b"application/problem+json") in start["headers"]
    assert b'"request_id":"req-9"' in body["body"]
