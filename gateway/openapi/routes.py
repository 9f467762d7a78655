"""The routes of routes.yaml as OpenAPI path items, one operation per method.

A route without an `openapi:` section is still documented (path, methods, parameters,
security, the gateway's own errors), with the upstream's answer left open (`default`);
with one, its summary, schemas and content type come from routes.yaml.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.config.runtime import CompiledRoute
from gateway.config.schemas import RouteSchemas
from gateway.errors import PROBLEM_CONTENT_TYPE
from gateway.openapi.components import Obj, header_ref, response_ref, schema_ref
from gateway.openapi.jobs import IDEMPOTENCY_PARAM, PREFER_PARAM, accepted_response

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

REQUEST_ID_PARAM: Obj = {
    "name": "X-Request-ID", "in": "header", "required": False,
    "description": "Your id for this request: kept when printable and at most 128 "
                   "characters, otherwise replaced by one the gateway makes",
    "schema": {"type": "string"},
}
NO_CACHE_PARAM: Obj = {
    "name": "Cache-Control", "in": "header", "required": False,
    "description": "`no-cache` skips the cache lookup (the answer is still stored)",
    "schema": {"type": "string", "enum": ["no-cache"]},
}


def component_name(route: str, part: str) -> str:
    """`sentiment`, `Request` -> `SentimentRequest`; `text-v2.beta` -> `TextV2BetaRequest`."""
    return "".join(w.capitalize() for w in re.split(r"[^A-Za-z0-9]+", route) if w) + part


def route_paths(route: CompiledRoute) -> list[tuple[str, list[Obj]]]:
    """The document paths a route answers, each with its path parameters."""
    spec = route.spec.match
    if spec.path is not None:
        params = [{"name": n, "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": "^[^/]+$"}}
                  for n in _PARAM.findall(spec.path)]
        return [(spec.path, params)]
    prefix = spec.prefix or "/"
    rest: Obj = {"name": "path", "in": "path", "required": True,
                 "description": f"the rest of the path after {prefix}",
                 "schema": {"type": "string", "minLength": 1}}
    if prefix.endswith("/"):
        return [(prefix + "{path}", [rest])]
    return [(prefix, []), (prefix + "/{path}", [rest])]


def _success(route: CompiledRoute, schemas: RouteSchemas | None, content_type: str) -> Obj:
    headers: Obj = {"X-Request-ID": header_ref("X-Request-ID")}
    if not route.public:
        for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                     "RateLimit-Policy"):
            headers[name] = header_ref(name)
    if route.spec.cache is not None and route.spec.cache.enabled:
        headers["X-Cache"] = header_ref("X-Cache")
    answer: Obj = {"description": "The upstream's answer", "headers": headers}
    if schemas is not None and schemas.response is not None:
        answer["content"] = {content_type: {"schema": schema_ref(
            component_name(route.name, "Response"))}}
    return answer


def operation(route: CompiledRoute, method: str, params: list[Obj],
              schemas: RouteSchemas | None, operation_id: str) -> Obj:
    api = route.spec.openapi
    content_type = api.content_type if api else "application/json"
    op: Obj = {
        "operationId": operation_id,
        "summary": (api.summary if api and api.summary else f"Route {route.name}"),
        "tags": list(api.tags) if api and api.tags else ["routes"],
        "parameters": [*params, REQUEST_ID_PARAM],
        "x-gateway-route": route.name,
        "x-gateway-cost": route.cost,
    }
    if api and api.description:
        op["description"] = api.description
    if route.spec.cache is not None and route.spec.cache.enabled:
        op["parameters"].append(NO_CACHE_PARAM)
    jobs = route.spec.async_
    if jobs is not None and not jobs.only:
        op["parameters"].append(PREFER_PARAM)
    # Callback-URL is left out: whether a URL is allowed depends on the tenant's
    # policies, not on anything a schema can say (docs/jobs.md documents it).
    if method == "POST" and not route.public:
        op["parameters"].append(IDEMPOTENCY_PARAM)
    has_body = method in BODY_METHODS
    if has_body:
        body_schema = (schema_ref(component_name(route.name, "Request"))
                       if schemas is not None and schemas.request is not None else {})
        op["requestBody"] = {
            "required": schemas is not None and schemas.request is not None,
            "description": f"At most {route.max_body_bytes} bytes",
            "content": {content_type if body_schema else "*/*": {"schema": body_schema}},
        }
    documented = schemas is not None and schemas.response is not None
    responses: Obj = {}
    if jobs is None or not jobs.only:
        responses["200" if documented else "default"] = _success(route, schemas, content_type)
    if jobs is not None:
        responses["202"] = accepted_response()
    statuses = [400]
    if not route.public:
        statuses += [401, 403, 429]
    if jobs is not None or (method == "POST" and not route.public):
        statuses += [409, 422]
    if has_body:
        statuses.append(413)
    statuses += [502, 503, 504]
    for status in sorted(statuses):
        responses[str(status)] = response_ref(status)
    if documented:
        # Refusals of the upstream itself (a bundled service's 400/413/422) pass through.
        responses["4XX"] = {"description": "The upstream refused the request",
                            "headers": {"X-Request-ID": header_ref("X-Request-ID")},
                            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema_ref("Problem")}}}
    op["responses"] = responses
    if route.public:
        op["security"] = []
    else:
        scopes = sorted(route.scopes)
        op["security"] = [{"apiKeyBearer": []}, {"apiKeyHeader": []}, {"oauth2": scopes}]
    return op


def paths_and_schemas(routes: list[CompiledRoute], api_schemas: dict[str, RouteSchemas]
                      ) -> tuple[Obj, Obj]:
    """Path items of every route (the first route to claim a path and method wins, as in
    the router), and the route schemas to put under components.schemas."""
    paths: Obj = {}
    schemas: Obj = {}
    for route in routes:
        route_schemas = api_schemas.get(route.name)
        if route_schemas is not None:
            if route_schemas.request is not None:
                schemas[component_name(route.name, "Request")] = route_schemas.request
            if route_schemas.response is not None:
                schemas[component_name(route.name, "Response")] = route_schemas.response
        methods = [m for m in METHOD_ORDER if m in route.methods]
        for j, (path, params) in enumerate(route_paths(route)):
            item: dict[str, Any] = paths.setdefault(path, {})
            for method in methods:
                op_id = route.name + (f"_{method.lower()}" if len(methods) > 1 else "")
                op_id += "_subpath" if j else ""
                if method.lower() not in item:
                    item[method.lower()] = operation(route, method, params, route_schemas,
                                                     op_id)
    return paths, schemas
