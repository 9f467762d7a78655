"""The gateway's own endpoints as OpenAPI path items: health, metrics, OAuth2, the document."""

from __future__ import annotations

from gateway.auth.oauth import JWKS_PATH, METADATA_PATH, TOKEN_PATH
from gateway.openapi.components import JSON, Obj, header_ref, response_ref, schema_ref

OPENAPI_PATH = "/openapi.json"
FORM = "application/x-www-form-urlencoded"
_REQUEST_ID = {"X-Request-ID": header_ref("X-Request-ID")}


def _get(op_id: str, summary: str, tag: str, responses: Obj) -> Obj:
    return {"get": {"operationId": op_id, "summary": summary, "tags": [tag],
                    "security": [], "responses": responses}}


def _json(description: str, schema: Obj, **headers: Obj) -> Obj:
    return {"description": description, "headers": {**_REQUEST_ID, **headers},
            "content": {JSON: {"schema": schema}}}


def _oauth_error(description: str) -> Obj:
    return _json(description, schema_ref("OAuthError"))


def _token() -> Obj:
    form = {
        "type": "object", "required": ["grant_type"],
        "properties": {
            "grant_type": {"const": "client_credentials"},
            "scope": {"type": "string", "description": "space-separated; default: all of "
                                                       "the client's scopes"},
            "client_id": {"type": "string", "description": "client_secret_post only"},
            "client_secret": {"type": "string", "description": "client_secret_post only"},
        },
    }
    return {"post": {
        "operationId": "oauth_token", "tags": ["oauth2"],
        "summary": "Client credentials grant (RFC 6749 §4.4)",
        "description": "The client authenticates by HTTP Basic (client_secret_basic) or "
                       "by form fields (client_secret_post), never both.",
        "security": [{"oauthClientBasic": []}, {}],
        "requestBody": {"required": True, "content": {FORM: {"schema": form}}},
        "responses": {
            "200": _json("An access token", schema_ref("TokenResponse")),
            "400": _oauth_error("invalid_request, unsupported_grant_type or invalid_scope"),
            "401": _oauth_error("invalid_client: unknown client, bad secret or disabled "
                                "tenant (WWW-Authenticate: Basic when Basic was tried)"),
            "413": response_ref(413),  # a body over 8 KiB: the gateway's own problem
        },
    }}


def control_paths() -> Obj:
    """Path items of the control endpoints (no credentials needed for any of them)."""
    cache = {"Cache-Control": {"schema": {"type": "string"}},
             "ETag": {"schema": {"type": "string"}}}
    paths: Obj = {
        "/healthz": _get("healthz", "Alive", "health",
                         {"200": _json("The process is alive", schema_ref("Health"))}),
        "/readyz": _get("readyz", "Ready to serve", "health", {
            "200": _json("Config loaded, stores reachable", schema_ref("Ready")),
            "503": _json("Not ready: a check failed", schema_ref("Ready")),
        }),
        OPENAPI_PATH: _get("openapi", "This document", "meta", {
            "200": _json("The OpenAPI 3.1 document of the current config",
                         {"type": "object"}, **cache),
            "304": {"description": "Not modified (If-None-Match)", "headers": cache},
        }),
        TOKEN_PATH: _token(),
        JWKS_PATH: _get("jwks", "Public keys that verify access tokens (RFC 7517)", "oauth2", {
            "200": _json("A JWK set", {"type": "object", "required": ["keys"],
                                       "properties": {"keys": {"type": "array"}}})}),
        METADATA_PATH: _get("oauth_metadata", "Authorization server metadata (RFC 8414)",
                            "oauth2", {"200": _json("Metadata", {
                                "type": "object", "required": ["issuer", "token_endpoint"]})}),
        "/metrics": _get("metrics", "Prometheus metrics", "health", {"200": {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}),
    }
    return paths
