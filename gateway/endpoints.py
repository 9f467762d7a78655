"""The gateway's own endpoints, and the one dispatch that puts them before the proxy.

    GatewayDispatch(endpoints, proxy)      raw ASGI, innermost in the one middleware stack
      1. an endpoint's exact path          its handler; another method is a 405 (+ Allow)
      2. any other reserved path           a 404 problem
      3. every other path                  the proxy, which matches routes.yaml
Steps 1 and 2 never reach an upstream, whatever routes.yaml says (see
`gateway.config.reserved`, which also makes `gateway check` refuse a route naming one).
The proxied path costs a dict lookup and a prefix test: no Starlette router.

A new endpoint is one `Endpoint(path, methods, handler)` in `gateway.app`'s list; a path
outside /oauth/ and /.well-known/ is also named in `gateway.config.reserved` (its exact
paths, or the prefix of a `{param}` endpoint): the dispatch refuses to start with an
endpoint that is not reserved, so `gateway check` and the running gateway agree.
Handlers take a Starlette `Request` and return a `Response`; whatever they raise is
rendered by `send_problem`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config.reserved import RESERVED_EXACT, RESERVED_PREFIXES, is_reserved
from gateway.errors import GatewayError, MethodNotAllowed, NotFound, send_problem

log = structlog.get_logger("gateway")

Handler = Callable[[Request], Awaitable[Response]]


class Endpoint:
    """One gateway endpoint: its path, the methods it takes (GET brings HEAD), a handler.

    The path is exact, or ends in one `{name}` segment (`/v1/jobs/{id}`): the handler
    reads it as `request.path_params["id"]`.
    """

    __slots__ = ("allowed", "handler", "head", "methods", "param", "path")

    def __init__(self, path: str, methods: Iterable[str], handler: Handler):
        self.path, self.handler = path, handler
        head, brace, rest = path.partition("{")
        if brace and (not head.endswith("/") or not rest.endswith("}") or "/" in rest):
            raise ValueError(f"{path}: only a last {{name}} segment is supported")
        self.head, self.param = head, rest[:-1] if brace else ""
        methods = set(methods)
        if "GET" in methods:
            methods.add("HEAD")
        self.methods = frozenset(methods)
        self.allowed = sorted(self.methods)


class GatewayDispatch:
    """Gateway endpoints first (exact, method-checked, reserved), then the proxy."""

    def __init__(self, endpoints: Sequence[Endpoint], proxy: ASGIApp):
        self.endpoints: dict[str, Endpoint] = {}
        self.templates: list[Endpoint] = []
        for endpoint in endpoints:
            if not is_reserved(endpoint.head if endpoint.param else endpoint.path):
                raise ValueError(f"{endpoint.path} is not reserved: add it to "
                                 "gateway.config.reserved")
            if endpoint.path in self.endpoints:
                raise ValueError(f"two endpoints at {endpoint.path}")
            if endpoint.param:
                self.templates.append(endpoint)
            else:
                self.endpoints[endpoint.path] = endpoint
        self.proxy = proxy

    def _template(self, scope: Scope, path: str) -> Endpoint | None:
        for endpoint in self.templates:
            value = path[len(endpoint.head):]
            if path.startswith(endpoint.head) and value and "/" not in value:
                scope["path_params"] = {endpoint.param: value}
                return endpoint
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path not in RESERVED_EXACT and not path.startswith(RESERVED_PREFIXES):
            await self.proxy(scope, receive, send)  # is_reserved, inline: the hot path
            return
        endpoint = self.endpoints.get(path)
        request_id: str = scope.get("state", {}).get("request_id", "")
        if endpoint is None and self.templates:
            endpoint = self._template(scope, path)
        if endpoint is None:
            await send_problem(send, NotFound(NotFound.NO_ENDPOINT.format(path=path)),
                               request_id)
        elif scope["method"] not in endpoint.methods:
            await send_problem(send, MethodNotAllowed(endpoint.allowed), request_id)
        else:
            await _serve(endpoint, scope, receive, send, request_id)


async def _serve(endpoint: Endpoint, scope: Scope, receive: Receive, send: Send,
                 request_id: str) -> None:
    started = False

    async def send_noting_start(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        response = await endpoint.handler(Request(scope, receive))
        await response(scope, receive, send_noting_start)
    except ClientDisconnect:
        return  # nobody left to answer
    except Exception as exc:
        if not isinstance(exc, GatewayError):
            log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
        if started:  # too late for a problem answer: the server closes the connection
            raise
        await send_problem(send, exc, request_id)
