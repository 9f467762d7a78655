"""The request side of an OpenAI-compatible route: read the body, size the call, and
write one body per group of the model's chain (each knows the model by its own name).

    read_request(body) -> dict                       or BadRequest
    estimate_tokens(body, raw_size, llm) -> int      tokens to reserve before the call
    chain_bodies(model, request, llm) -> ((group, body), ...)

The estimate is deliberately simple and errs high: prompt tokens are taken as the
request's size in bytes over 4 (JSON syntax included, so a little over a tokenizer's
count for English), plus the completion tokens the request may generate (`max_tokens`,
`max_completion_tokens`, or the route's `llm.max_tokens`), times `n`. The actual usage
settles it after the answer (docs/llm.md, "Token limits").
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config.models import LlmRoute
from gateway.config.runtime import CompiledGroup, CompiledModel
from gateway.errors import BadRequest

BYTES_PER_TOKEN = 4
STREAMING_APIS = frozenset({"chat", "completions"})


def read_request(body: bytes | None) -> dict[str, Any]:
    """The request as a JSON object with a string `model`; BadRequest otherwise."""
    try:
        request = orjson.loads(body or b"")
    except orjson.JSONDecodeError:
        raise BadRequest(BadRequest.NOT_JSON) from None
    if not isinstance(request, dict):
        raise BadRequest(BadRequest.NOT_JSON)
    if not isinstance(request.get("model"), str) or not request["model"]:
        raise BadRequest(BadRequest.MODEL_MISSING)
    return request


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def estimate_tokens(request: dict[str, Any], raw_size: int, llm: LlmRoute) -> int:
    """Prompt tokens (bytes / 4) plus the most completion tokens the call may produce."""
    prompt = -(-raw_size // BYTES_PER_TOKEN)
    if llm.api == "embeddings":
        return prompt
    completion = (_positive_int(request.get("max_completion_tokens"))
                  or _positive_int(request.get("max_tokens")) or llm.max_tokens)
    return prompt + completion * (_positive_int(request.get("n")) or 1)


def wants_stream(request: dict[str, Any], llm: LlmRoute) -> bool:
    return llm.api in STREAMING_APIS and request.get("stream") is True


def chain_bodies(model: CompiledModel, request: dict[str, Any], llm: LlmRoute
                 ) -> tuple[tuple[CompiledGroup, bytes], ...]:
    """One body per group serving the model: its name there, and for a streamed call
    `stream_options.include_usage` when the route asks for usage (so the last chunk
    carries it)."""
    if wants_stream(request, llm) and llm.include_usage:
        options = request.get("stream_options")
        request = {**request, "stream_options": {
            **(options if isinstance(options, dict) else {}), "include_usage": True}}
    out = []
    for group, upstream_name in model.chain:
        out.append((group, orjson.dumps({**request, "model": upstream_name})))
    return tuple(out)
