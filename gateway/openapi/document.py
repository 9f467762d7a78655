"""`build_document(config, base_url)`, and `GET /openapi.json` serving it.

The endpoint builds the document the first time it is asked for under a config, keeps its
bytes and ETag, and builds again only when a reload has swapped the config. It is public
and cacheable: `Cache-Control: public, no-cache` lets any cache store it but revalidate
(`If-None-Match` → 304), so a reload is seen at once and an unchanged document costs a
304 of no body.
"""

from __future__ import annotations

import hashlib

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway import __version__
from gateway.auth.oauth import TOKEN_PATH
from gateway.config.runtime import ConfigHolder, RuntimeConfig
from gateway.openapi.admin import admin_paths
from gateway.openapi.components import JSON, Obj, components
from gateway.openapi.control import control_paths
from gateway.openapi.jobs import job_paths, job_schemas
from gateway.openapi.routes import paths_and_schemas

CACHE_CONTROL = "public, no-cache"
DESCRIPTION = (
    "One authenticated, rate-limited, cached entry point to machine-learning services. "
    "Every error is an RFC 9457 `application/problem+json` body with a `request_id`; "
    "`X-Request-ID` is kept or made and echoed on every answer."
)
TAGS = [
    {"name": "inference", "description": "The bundled inference services"},
    {"name": "routes", "description": "Routes of routes.yaml without an openapi section"},
    {"name": "jobs", "description": "Asynchronous jobs: state, results, cancellation"},
    {"name": "oauth2", "description": "Access tokens for the client credentials grant"},
    {"name": "health", "description": "Liveness, readiness, metrics"},
    {"name": "meta", "description": "This document"},
    {"name": "admin", "description": "The operator's admin API (its own credential, "
                                     "GATEWAY_ADMIN_TOKEN; off without one)"},
]


def build_document(config: RuntimeConfig, base_url: str) -> Obj:
    """The whole document for one config; `base_url` is where clients reach the gateway."""
    routes = list(config.routes.values())
    paths, route_schemas = paths_and_schemas(routes, dict(config.api_schemas))
    paths.update(control_paths())  # the gateway's endpoints win a path, as in the app
    paths.update(admin_paths())
    paths.update(job_paths())
    scopes: dict[str, list[str]] = {}
    for route in routes:
        for scope in route.scopes:
            scopes.setdefault(scope, []).append(route.name)
    scope_docs = {s: "routes: " + ", ".join(names) for s, names in sorted(scopes.items())}
    return {
        "openapi": "3.1.0",
        "info": {"title": "AI gateway", "version": __version__, "description": DESCRIPTION,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "servers": [{"url": base_url}],
        "tags": TAGS,
        "paths": paths,
        "components": components(base_url + TOKEN_PATH, scope_docs,
                                 {**job_schemas(), **route_schemas}),
    }


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


class OpenApiEndpoint:
    """GET /openapi.json: the stored document of the current config."""

    def __init__(self, holder: ConfigHolder, base_url: str):
        self.holder = holder
        self.base_url = base_url
        self._built: tuple[RuntimeConfig, bytes, str] | None = None

    def current(self) -> tuple[bytes, str]:
        """The serialized document and its ETag, built once per config."""
        config = self.holder.current
        built = self._built
        if built is None or built[0] is not config:
            body = orjson.dumps(build_document(config, self.base_url),
                                option=orjson.OPT_INDENT_2)
            built = (config, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
            self._built = built
        return built[1], built[2]

    async def endpoint(self, request: Request) -> Response:
        body, etag = self.current()
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if _etag_matches(request.headers.get("if-none-match", ""), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=JSON, headers=headers)
