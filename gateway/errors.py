"""Every error the gateway raises, and the one place they become HTTP answers.

    GatewayError                  500  base; never raised bare
    ├── ConfigError               ---  config refused (file, line, field); never sent to clients
    ├── BadRequest                400  malformed request the client can fix
    ├── Unauthenticated           401  no or bad credentials (adds WWW-Authenticate: Bearer)
    ├── Forbidden                 403  valid credentials, route or scope not allowed
    │   └── InsufficientScope     403  a route scope is missing (WWW-Authenticate: Bearer)
    ├── NotFound                  404  no route matches the path
    ├── MethodNotAllowed          405  a route matches the path but not the method (adds Allow)
    ├── Conflict                  409  the resource's state forbids it (a running job, a busy key)
    ├── PayloadTooLarge           413  request body over the route's limit
    ├── UriTooLong                414  request target over the header line limit (server)
    ├── UnprocessableContent      422  well-formed but unusable (callback URL, reused key)
    ├── HeaderTooLarge            431  a header line, all of them, or their count over a limit
    ├── RateLimited               429  over a rate limit or concurrency cap (adds Retry-After)
    ├── UpstreamError             502  upstream refused, dropped, or answered 5xx after retries
    ├── ServiceUnavailable        503  no healthy upstream, circuit open, store down (Retry-After)
    │   └── StoreUnavailable      503  shared state store (Redis) down or its breaker open
    └── UpstreamTimeout           504  upstream did not answer within the route's timeout

Foreign errors (the upstream client's, httpx's, redis') are mapped into this tree at one
boundary each:
upstream errors in `gateway.transport._map_error`, store errors inside the stores.
Every client-facing error leaves through `render_problem` (`send_problem` on the raw
ASGI path of the proxy and the gateway's endpoints alike), an RFC 9457 body. The text
a client reads is a constant beside its class; only values are formatted in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import ClassVar

import orjson
from starlette.exceptions import HTTPException
from starlette.types import Send

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"
_CONTENT_TYPE = (b"content-type", PROBLEM_CONTENT_TYPE.encode())
# The detail of every 500: what went wrong is for the log, never for the client.
INTERNAL_ERROR = "the gateway failed to handle this request"


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers: dict[str, str] = dict(headers or {})


class ConfigError(GatewayError):
    """Raised when routes.yaml or a policies/ file does not validate."""

    type = "config-error"
    title = "Configuration refused"

    def __init__(self, file: str, line: int | None, field: str, message: str,
                 *, others: tuple[ConfigError, ...] = ()):
        self.file, self.line, self.field, self.message = file, line, field, message
        self.others = others  # the further problems found in the same load
        where = f"{file}:{line}" if line else file
        self.text = f"{where}: {field}: {message}"
        more = f" (and {len(others)} more problem{'s' * (len(others) > 1)})" if others else ""
        super().__init__(self.text + more)

    @property
    def problems(self) -> tuple[ConfigError, ...]:
        """Every problem, this one first; each reads `file:line: field: message`."""
        return (ConfigError(self.file, self.line, self.field, self.message), *self.others)

    @classmethod
    def of(cls, errors: list[ConfigError]) -> ConfigError:
        """One error carrying every problem of `errors` (which may carry several each)."""
        flat = [p for e in errors for p in e.problems]
        first = flat[0]
        return cls(first.file, first.line, first.field, first.message, others=tuple(flat[1:]))


class BadRequest(GatewayError):
    """Raised when a request is malformed in a way the client can fix."""

    status, type, title = 400, "bad-request", "Bad request"
    BAD_LENGTH: ClassVar[str] = "Content-Length is not a number"
    # The server protocol's refusals (gateway.http_protocol), before any app code runs.
    UNPARSABLE: ClassVar[str] = "the server could not parse this HTTP request"
    FRAMING: ClassVar[str] = ("ambiguous body framing: Content-Length with Transfer-Encoding, "
                              "two Content-Length headers, or a coding after chunked")
    NOT_JSON: ClassVar[str] = "the body is not a JSON object"
    MODEL_MISSING: ClassVar[str] = "the body names no model (a string \"model\" field)"


class Unauthenticated(GatewayError):
    """Raised when credentials are missing, malformed, unknown, expired or revoked."""

    status, type, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, detail: str | None = None, *, error: str = "invalid_token"):
        # RFC 6750 §3: no error code when the request carried no credentials at all.
        challenge = 'Bearer realm="gateway"'
        if error:
            challenge += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})
        self.error = error


class Forbidden(GatewayError):
    """Raised when valid credentials may not call this route or lack a scope."""

    status, type, title = 403, "forbidden", "Forbidden"
    MODEL_NOT_ALLOWED: ClassVar[str] = "tenant {tenant!r} may not use model {model!r}"


class InsufficientScope(Forbidden):
    """Raised when valid credentials lack a scope the route needs (RFC 6750 §3.1)."""

    def __init__(self, detail: str, scopes: str):
        super().__init__(detail)
        self.headers["WWW-Authenticate"] = (
            f'Bearer realm="gateway", error="insufficient_scope", scope="{scopes}"'
        )


class NotFound(GatewayError):
    """Raised when no route matches the request path."""

    status, type, title = 404, "not-found", "Not found"
    NO_ROUTE: ClassVar[str] = "no route for {path}"
    NO_ENDPOINT: ClassVar[str] = "no gateway endpoint at {path}"
    NO_MODEL: ClassVar[str] = ("no model {model!r} here: GET /v1/models lists the models "
                               "you may use")


class MethodNotAllowed(GatewayError):
    """Raised when a route matches the path but not the method."""

    status, type, title = 405, "method-not-allowed", "Method not allowed"

    def __init__(self, allowed: list[str]):
        super().__init__(
            f"allowed methods: {', '.join(allowed)}", headers={"Allow": ", ".join(allowed)}
        )


class Conflict(GatewayError):
    """Raised when the target's current state forbids the request (a job no longer
    queued cannot be cancelled; an Idempotency-Key whose first request is in progress)."""

    status, type, title = 409, "conflict", "Conflict"
    NOT_QUEUED: ClassVar[str] = "job {job_id} is {status}: only a queued job can be cancelled"
    KEY_IN_PROGRESS: ClassVar[str] = ("a request with this Idempotency-Key is still in "
                                      "progress: retry after it has finished")

    def __init__(self, detail: str, *, retry_after: int | None = None):
        super().__init__(detail, headers={"Retry-After": str(retry_after)}
                         if retry_after is not None else None)


class UnprocessableContent(GatewayError):
    """Raised when a request is well-formed but cannot be acted on as sent (RFC 9110
    §15.5.21): a callback URL the tenant may not use, an Idempotency-Key reused for
    another request."""

    status, type, title = 422, "unprocessable-content", "Unprocessable content"
    CALLBACK_NOT_ALLOWED: ClassVar[str] = ("Callback-URL is not under a prefix that "
                                           "policies/tenants.yaml allows this tenant")
    CALLBACK_MALFORMED: ClassVar[str] = "Callback-URL must be an absolute http(s) URL"
    CALLBACK_SYNC: ClassVar[str] = "Callback-URL needs an asynchronous request"
    KEY_REUSED: ClassVar[str] = ("this Idempotency-Key was used for a different request "
                                 "(method, path, body or Prefer)")
    KEY_MALFORMED: ClassVar[str] = ("Idempotency-Key must be 1 to 255 printable ASCII "
                                    "characters")


class PayloadTooLarge(GatewayError):
    """Raised when a request body exceeds the route's `max_body_bytes`."""

    status, type, title = 413, "payload-too-large", "Request body too large"

    def __init__(self, limit: int):
        super().__init__(f"request body exceeds the limit of {limit} bytes")
        self.limit = limit


class RequestTimeout(GatewayError):
    """Raised by the server protocol when a client sends its head or body too slowly."""

    status, type, title = 408, "request-timeout", "Request timeout"
    HEAD: ClassVar[str] = "the request head did not arrive within {limit:g} seconds"
    BODY: ClassVar[str] = "the request body paused for more than {limit:g} seconds"


class UriTooLong(GatewayError):
    """Raised by the server protocol when the request target exceeds the line limit."""

    status, type, title = 414, "uri-too-long", "URI too long"
    TOO_LONG: ClassVar[str] = "the request target exceeds {limit} bytes"


class HeaderTooLarge(GatewayError):
    """Raised by the server protocol when a request head exceeds one of its limits."""

    status, type, title = 431, "header-too-large", "Request header fields too large"
    LINE: ClassVar[str] = "a header line exceeds {limit} bytes"
    TOTAL: ClassVar[str] = "the request headers exceed {limit} bytes in all"
    COUNT: ClassVar[str] = "the request has more than {limit} header lines"


class RateLimited(GatewayError):
    """Raised when a tenant is over a rate limit, quota or concurrency cap."""

    status, type, title = 429, "rate-limited", "Too many requests"

    def __init__(self, detail: str, retry_after: int, headers: Mapping[str, str] | None = None):
        super().__init__(detail, headers={**(headers or {}), "Retry-After": str(retry_after)})
        self.retry_after = retry_after


class UpstreamError(GatewayError):
    """Raised when the upstream refused, dropped the connection or answered 5xx after retries."""

    status, type, title = 502, "bad-gateway", "Upstream failed"
    ANSWERED: ClassVar[str] = "upstream answered {status}"
    CONNECT_FAILED: ClassVar[str] = "could not connect to the upstream"
    RESET: ClassVar[str] = "the upstream closed the connection"


class ServiceUnavailable(GatewayError):
    """Raised when no healthy upstream is left, a circuit is open, or a state store is down."""

    status, type, title = 503, "service-unavailable", "Service unavailable"
    NO_HEALTHY_TARGET: ClassVar[str] = "no healthy upstream in group {group!r}"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1):
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class StoreUnavailable(ServiceUnavailable):
    """Raised by a store when Redis fails or its breaker is open; policies decide what it
    means (fail open: serve unlimited; fail closed: answer 503)."""

    title = "State store unavailable"


class UpstreamTimeout(GatewayError):
    """Raised when the upstream did not answer within the route's timeout."""

    status, type, title = 504, "gateway-timeout", "Upstream timed out"
    CONNECT: ClassVar[str] = "could not connect within {seconds}s"
    ANSWER: ClassVar[str] = "no answer within {seconds}s"


def problem_body(status: int, type_: str, title: str, detail: str, request_id: str) -> bytes:
    """Serialize one RFC 9457 problem document."""
    return orjson.dumps(
        {
            "type": PROBLEM_BASE + type_,
            "title": title,
            "status": status,
            "detail": detail,
            "request_id": request_id,
        }
    )


def render_problem(exc: BaseException, request_id: str
                   ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and RFC 9457 body for `exc`. Anything but a `GatewayError` (or an
    `HTTPException` of a library) is a bare 500 whose text never reaches the client."""
    extra: Mapping[str, str]
    if isinstance(exc, GatewayError) and not isinstance(exc, ConfigError):
        status, type_, title, detail = exc.status, exc.type, exc.title, exc.detail
        extra = exc.headers
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        status = exc.status_code
        title = HTTPStatus(status).phrase
        type_, detail, extra = title.lower().replace(" ", "-"), exc.detail, exc.headers or {}
    else:
        status, type_, title = 500, GatewayError.type, GatewayError.title
        detail, extra = INTERNAL_ERROR, {}
    headers = [_CONTENT_TYPE, *((k.lower().encode("latin-1"), v.encode("latin-1"))
                                for k, v in extra.items())]
    return status, headers, problem_body(status, type_, title, detail, request_id)


async def send_problem(send: Send, exc: BaseException, request_id: str,
                       extra_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Answer with the problem for `exc`, plus `extra_headers` (e.g. RateLimit-*)."""
    status, headers, body = render_problem(exc, request_id)
    if extra_headers:
        headers += extra_headers
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
