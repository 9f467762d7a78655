"""The parts every OpenAPI document shares: error schema, headers, security schemes.

Pure data: `components(...)` builds the `components` object, and the `*_ref` helpers name
its members. The statuses and headers are the ones docs/contract.md promises.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import PROBLEM_BASE, PROBLEM_CONTENT_TYPE

JSON = "application/json"
Obj = dict[str, Any]

# Every status the gateway itself answers with a problem body, and what it means.
GATEWAY_STATUSES: dict[int, str] = {
    400: "Malformed request (a bad header, Authorization and X-API-Key that differ)",
    401: "No or bad credentials (WWW-Authenticate: Bearer, RFC 6750)",
    403: "Valid credentials, but this route or a scope is not allowed",
    404: "No route matches the path",
    405: "The path exists, the method does not (Allow lists the methods)",
    409: "The job is no longer queued, or the Idempotency-Key's first request still runs",
    413: "Request body over the route's limit",
    422: "A Callback-URL the tenant may not use, or an Idempotency-Key used for another "
         "request",
    429: "Over a rate limit, quota or concurrency cap (Retry-After)",
    502: "Upstream refused, dropped the connection, or answered 5xx after retries",
    503: "No healthy upstream, circuit open, or state store down (Retry-After)",
    504: "Upstream did not answer within the route's timeout",
}
ERROR_NAMES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
               405: "MethodNotAllowed", 409: "Conflict", 413: "PayloadTooLarge",
               422: "UnprocessableContent", 429: "RateLimited",
               502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}

REQUEST_ID_DOC = ("Kept if printable and at most 128 characters, otherwise a new one is made; "
                  "echoed on every answer, sent upstream, in every log line of the request.")


def schema_ref(name: str) -> Obj:
    return {"$ref": f"#/components/schemas/{name}"}


def header_ref(name: str) -> Obj:
    return {"$ref": f"#/components/headers/{name}"}


def response_ref(status: int) -> Obj:
    return {"$ref": f"#/components/responses/{ERROR_NAMES[status]}"}


def _problem_schema() -> Obj:
    return {
        "type": "object",
        "description": "RFC 9457 problem details; never a stack trace, never a secret.",
        "required": ["type", "title", "status", "detail", "request_id"],
        "properties": {
            "type": {"type": "string", "description": f"a URI reference, {PROBLEM_BASE}<slug>"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "request_id": {"type": "string", "description": "the X-Request-ID of the answer"},
        },
    }


def _oauth_error_schema() -> Obj:
    problem = _problem_schema()
    return {
        "type": "object",
        "description": "RFC 6749 §5.2 error, with the RFC 9457 members of every gateway error.",
        "required": ["error", *problem["required"]],
        "properties": {
            "error": {"type": "string", "enum": [
                "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope"]},
            "error_description": {"type": "string"},
            **problem["properties"],
        },
    }


def _schemas() -> Obj:
    check = {"type": "object", "required": ["ok", "detail"],
             "properties": {"ok": {"type": "boolean"}, "detail": {"type": "string"}}}
    return {
        "Problem": _problem_schema(),
        "OAuthError": _oauth_error_schema(),
        "TokenResponse": {
            "type": "object", "required": ["access_token", "token_type", "expires_in", "scope"],
            "properties": {
                "access_token": {"type": "string", "description": "a signed JWT"},
                "token_type": {"const": "Bearer"},
                "expires_in": {"type": "integer", "minimum": 1, "description": "seconds"},
                "scope": {"type": "string", "description": "space-separated scopes granted"},
            },
        },
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"const": "ok"}}},
        "Ready": {"type": "object", "required": ["status", "checks"], "properties": {
            "status": {"enum": ["ready", "not ready"]},
            "checks": {"type": "object", "additionalProperties": check},
        }},
    }


def _headers() -> Obj:
    def integer(description: str) -> Obj:
        return {"description": description, "schema": {"type": "integer", "minimum": 0}}

    return {
        "X-Request-ID": {"description": REQUEST_ID_DOC, "required": True,
                         "schema": {"type": "string", "maxLength": 128}},
        "RateLimit-Limit": integer("Requests allowed in the window closest to exhaustion"),
        "RateLimit-Remaining": integer("Requests left in that window"),
        "RateLimit-Reset": integer("Seconds until the window frees room"),
        "RateLimit-Policy": {"description": "The limits in force (draft-ietf-httpapi-ratelimit"
                                            "-headers)", "schema": {"type": "string"}},
        "Retry-After": {"description": "Whole seconds to wait before trying again",
                        "required": True, "schema": {"type": "integer", "minimum": 0}},
        "X-Cache": {"description": "Cached routes: HIT, MISS or BYPASS (Cache-Control: "
                                   "no-cache skips the lookup)",
                    "schema": {"type": "string", "enum": ["HIT", "MISS", "BYPASS"]}},
        "WWW-Authenticate": {"description": "RFC 6750 challenge", "required": True,
                             "schema": {"type": "string"}},
        "Allow": {"description": "The methods the path accepts", "required": True,
                  "schema": {"type": "string"}},
    }


def _error_response(status: int) -> Obj:
    headers = {"X-Request-ID": header_ref("X-Request-ID")}
    if status in (429, 503):
        headers["Retry-After"] = header_ref("Retry-After")
    if status == 401:
        headers["WWW-Authenticate"] = header_ref("WWW-Authenticate")
    if status == 405:
        headers["Allow"] = header_ref("Allow")
    return {"description": GATEWAY_STATUSES[status], "headers": headers,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema_ref("Problem")}}}


def security_schemes(token_url: str, scopes: dict[str, str]) -> Obj:
    return {
        "apiKeyBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "API key",
                         "description": "An API key as `Authorization: Bearer <key>`"},
        "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "An API key as `X-API-Key: <key>`"},
        "oauth2": {"type": "oauth2", "description": "Access tokens (signed JWTs) from the "
                   "client credentials grant, sent as `Authorization: Bearer <token>`",
                   "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": scopes}}},
        "oauthClientBasic": {"type": "http", "scheme": "basic",
                             "description": "OAuth2 client id and secret at the token endpoint"},
        "adminToken": {"type": "http", "scheme": "bearer", "bearerFormat": "admin token",
                       "description": "The admin API's own token (GATEWAY_ADMIN_TOKEN), "
                                      "never a tenant's key"},
    }


def components(token_url: str, scopes: dict[str, str], route_schemas: Obj) -> Obj:
    return {
        "schemas": {**_schemas(), **route_schemas},
        "headers": _headers(),
        "responses": {ERROR_NAMES[s]: _error_response(s) for s in GATEWAY_STATUSES},
        "securitySchemes": security_schemes(token_url, scopes),
    }
