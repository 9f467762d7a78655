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


def test_a_streamed_body_ending_after_the_answer_leaves_no_watched_request(
        tmp_path: Path) -> None:
    # The upstream may answer before it has read all of a streamed body (and go on reading):
    # the body's end must not start watching a request that no longer waits on anything.
    cfg = config(tmp_path, [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main",
                             "public": True}])
    readers: list[asyncio.Task[None]] = []

    async def answer_then_read(request: Any) -> Any:
        async def drain() -> None:
            await asyncio.sleep(0.01)
            async for _ in request.body:
                pass
        readers.append(asyncio.ensure_future(drain()))
        return await answer(200, b"early")(request)

    proxy = ProxyEndpoint(ConfigHolder(cfg), [],
                          UpstreamClient(TargetHealth(), FakeTransport(answer_then_read)))

    class Cycle:  # what uvicorn's request cycle offers: `disconnected` and `receive`
        disconnected = False

        def __init__(self) -> None:
            self.messages = [{"type": "http.request", "body": b"x" * 70_000,
                              "more_body": True},
                             {"type": "http.request", "body": b"", "more_body": False}]

        async def receive(self) -> dict[str, Any]:
            return self.messages.pop(0)

    async def run() -> None:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/api/up", "query_string": b"",
                 "headers": [(b"content-length", b"70000")], "client": ("127.0.0.1", 5000),
                 "state": {"request_id": "req-7"}}
        await proxy(scope, Cycle().receive, send)
        await asyncio.gather(*readers)
        assert sent[0]["status"] == 200
        assert proxy.disconnects._cycles == {}

    asyncio.run(run())
