"""OpenAI-compatible routes: the model a request names, who may use it, where it goes.

On a route with `llm:` (docs/llm.md), before the limits:
* `api: models` is answered here: `GET /v1/models` lists the models the tenant may
  use (routes.yaml `models:`, narrowed by the tenant's `models:` in tenants.yaml), and
  on a `/v1/models/{model}` route that one model;
* otherwise the body's `model` must be one of routes.yaml's (else 404) and one the
  tenant may use (else 403); the call is noted on `ctx.llm` with its token estimate, and
  `ctx.chain` holds the model's groups in order, each with the body naming the model as
  that group knows it.
On the answer: the upstream's own `x-ratelimit-*` headers (the gateway's account with
the provider, not the tenant's) are dropped, and the usage is read (`gateway.llm_usage`):
from a whole body at once, from a stream as it passes.
"""

from __future__ import annotations

import orjson

from gateway.config.runtime import CompiledRoute, RuntimeConfig
from gateway.context import LlmCall, RequestContext
from gateway.errors import Forbidden, NotFound
from gateway.llm_request import chain_bodies, estimate_tokens, read_request, wants_stream
from gateway.llm_usage import metered, take_json_usage
from gateway.pipeline import Policy
from gateway.proxy_response import ProxyResponse

JSON_HEADERS = [(b"content-type", b"application/json")]
PROVIDER_LIMIT_HEADERS = b"x-ratelimit-"


def models_answer(config: RuntimeConfig, tenant: str | None, one: str | None = None
                  ) -> ProxyResponse:
    """OpenAI's `GET /v1/models`: the list of the models `tenant` may use; with `one`
    (`GET /v1/models/{model}`), that model alone, or 404 when it is not one of them."""
    models = config.models_of(tenant) if tenant is not None else list(config.models.values())
    shown = [{"id": m.name, "object": "model", "created": 0, "owned_by": m.owned_by}
             for m in models if one is None or m.name == one]
    if one is not None and not shown:
        raise NotFound(NotFound.NO_MODEL.format(model=one))
    body = orjson.dumps(shown[0] if one is not None else {"object": "list", "data": shown})
    return ProxyResponse(200, [*JSON_HEADERS, (b"content-length", str(len(body)).encode())],
                         body=body, source="gateway")


class LlmPolicy(Policy):
    """Model lookup, the tenant's model allowlist, per-group bodies; usage on the answer."""

    name = "llm"

    def applies_to(self, route: CompiledRoute) -> bool:
        return route.llm is not None

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        llm = ctx.route.llm
        assert llm is not None
        tenant = ctx.principal.tenant_id if ctx.principal is not None else None
        if llm.api == "models":  # a {model} parameter asks for that one model
            return models_answer(ctx.config, tenant, ctx.path_params.get("model"))
        request = read_request(ctx.body)
        name = request["model"]
        model = ctx.config.models.get(name)
        if model is None:
            raise NotFound(NotFound.NO_MODEL.format(model=name))
        if tenant is not None:
            allowed = ctx.config.tenant_models.get(tenant)
            if allowed is not None and name not in allowed:
                raise Forbidden(Forbidden.MODEL_NOT_ALLOWED.format(tenant=tenant, model=name))
        ctx.llm = LlmCall(model, wants_stream(request, llm),
                          estimate_tokens(request, len(ctx.body or b""), llm))
        ctx.chain = chain_bodies(model, request, llm)
        return None

    async def on_response(self, ctx: RequestContext, response: ProxyResponse) -> None:
        call = ctx.llm
        if call is None or response.source != "upstream":
            return
        response.headers = [h for h in response.headers
                            if not h[0].startswith(PROVIDER_LIMIT_HEADERS)]
        call.status = response.status
        if response.status >= 400:
            return
        if response.body is not None:
            take_json_usage(response.body, call)
        elif response.stream is not None:
            content_type = response.header(b"content-type") or b""
            response.stream = metered(response.stream, call,
                                      content_type.startswith(b"text/event-stream"))
