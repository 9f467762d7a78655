"""The one dispatch on its own: endpoints first, method-checked; the proxy for the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway.endpoints import Endpoint, GatewayDispatch
from tests.pipeline.test_proxy_endpoint import call


async def proxy(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"proxied " + scope["path"].encode()})


async def job(request: Request) -> Response:
    return PlainTextResponse("job " + request.path_params["id"])


async def broken(request: Request) -> Response:
    raise RuntimeError("secret detail")


def dispatch() -> GatewayDispatch:
    return GatewayDispatch([Endpoint("/oauth/jobs/{id}", ["GET"], job),
                            Endpoint("/metrics", ["GET"], broken)], proxy)


def status_and_body(method: str, path: str) -> tuple[int, bytes]:
    start, body = asyncio.run(call(dispatch(), method, path))
    return start["status"], body["body"]


def test_templated_endpoints_take_one_last_segment() -> None:
    assert status_and_body("GET", "/oauth/jobs/42") == (200, b"job 42")
    assert status_and_body("GET", "/oauth/jobs/4/2")[0] == 404  # reserved, no endpoint
    assert status_and_body("DELETE", "/oauth/jobs/42")[0] == 405
    assert status_and_body("GET", "/v1/tasks/42") == (299, b"proxied /v1/tasks/42")


def test_a_failing_endpoint_is_a_bare_500_problem() -> None:
    status, body = status_and_body("GET", "/metrics")
    assert status == 500 and b"secret" not in body and b'"request_id":"req-9"' in body


def test_an_endpoint_outside_the_reserved_paths_is_refused() -> None:
    with pytest.raises(ValueError, match="not reserved"):
        GatewayDispatch([Endpoint("/status.json", ["GET"], job)], proxy)
    with pytest.raises(ValueError, match="last"):
        Endpoint("/oauth/{a}/b", ["GET"], job)
