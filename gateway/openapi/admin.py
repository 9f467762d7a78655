"""The admin API (gateway/admin_api.py) as OpenAPI path items, under the `admin` tag.

Its own security scheme (`adminToken`, a bearer token that is never a tenant's
credential); answers are JSON objects whose shapes docs/admin.md describes.
"""

from __future__ import annotations

from gateway.openapi.components import JSON, Obj, header_ref, response_ref

ADMIN_SECURITY: list[Obj] = [{"adminToken": []}]
_REQUEST_ID = {"X-Request-ID": header_ref("X-Request-ID")}


def _ok(description: str, status: str = "200") -> Obj:
    return {status: {"description": description, "headers": _REQUEST_ID,
                     "content": {JSON: {"schema": {"type": "object"}}}}}


def _op(op_id: str, summary: str, responses: Obj, **extra: Obj | list[Obj]) -> Obj:
    return {"operationId": op_id, "summary": summary, "tags": ["admin"],
            "security": ADMIN_SECURITY,
            "responses": {**responses, "401": response_ref(401), "404": response_ref(404)},
            **extra}


def admin_paths() -> Obj:
    key_body = {"type": "object", "required": ["tenant"], "properties": {
        "tenant": {"type": "string"}, "name": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "expires_in": {"type": "number", "exclusiveMinimum": 0,
                       "description": "seconds"}}}
    return {
        "/admin/routes": {"get": _op(
            "admin_routes", "Routes, their upstream groups and each target's health",
            _ok("Routes (secrets of upstream headers shown by source only)"))},
        "/admin/tenants": {"get": _op(
            "admin_tenants", "Tenants, their limits and current usage",
            _ok("Tenants with what is left of each limit"))},
        "/admin/keys": {
            "get": _op("admin_keys", "API keys: ids and state, never secrets",
                       _ok("Keys"), parameters=[{"name": "tenant", "in": "query",
                                                 "required": False,
                                                 "schema": {"type": "string"}}]),
            "post": _op("admin_create_key", "Issue an API key (the key is shown once)",
                        {**_ok("The new key", "201"), "400": response_ref(400)},
                        requestBody={"required": True,
                                     "content": {JSON: {"schema": key_body}}}),
        },
        "/admin/keys/{key_id}": {"delete": _op(
            "admin_revoke_key", "Revoke an API key at once", _ok("Revoked"),
            parameters=[{"name": "key_id", "in": "path", "required": True,
                         "schema": {"type": "string"}}])},
        "/admin/config/check": {"post": _op(
            "admin_config_check", "Load routes.yaml and policies/ now",
            {**_ok("Loaded and swapped in"),
             "422": {"description": "Refused: every problem with file, line and field; "
                                    "the config in force is unchanged",
                     "headers": _REQUEST_ID,
                     "content": {JSON: {"schema": {"type": "object"}}}}})},
    }
