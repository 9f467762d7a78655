"""OpenAI's embeddings API shape: `POST /v1/embeddings` request and answer.

    {"input": "text" | ["text", ...], "model": "all-MiniLM-L6-v2",
     "encoding_format": "float" | "base64", "dimensions": 384, "user": "..."}
    -> {"object": "list", "model": "all-MiniLM-L6-v2",
        "data": [{"object": "embedding", "index": 0, "embedding": [...] | "<base64>"}],
        "usage": {"prompt_tokens": N, "total_tokens": N}}

So existing OpenAI clients work unchanged (the official Python client asks for base64 by
default: little-endian float32, as here). Differences, refused with a 422 problem that
says so: token-id input (the ids of OpenAI's tokenizers mean nothing to this model) and
a `dimensions` other than the model's own (MiniLM vectors cannot be shortened). `model`
may be left out; a model this service does not serve is a 404. An optional field sent as
null counts as left out. Errors are problem+json
like every answer of the bundled services, not OpenAI's `{"error": ...}`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ml_services.parsing import decode_json
from ml_services.problems import ProblemError

_FIELDS = frozenset({"input", "model", "encoding_format", "dimensions", "user"})


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    texts: list[str]
    base64: bool


def _invalid(detail: str) -> ProblemError:
    return ProblemError(422, "invalid-request", "Invalid request body", detail)


def parse_embeddings(raw: bytes, *, model_ids: Sequence[str], dimensions: int,
                     max_texts: int, max_chars: int) -> EmbeddingsRequest:
    """Validate a request body against the served model and the limits."""
    body = decode_json(raw)
    if type(body) is not dict:
        raise _invalid("the body must be a JSON object with 'input'")
    if not body.keys() <= _FIELDS:
        unknown = ", ".join(sorted(str(k) for k in body.keys() - _FIELDS))
        raise _invalid(f"unknown field(s): {unknown}; allowed: {', '.join(sorted(_FIELDS))}")
    model = body.get("model")
    if model is not None and model not in model_ids:
        raise ProblemError(404, "model-not-found", "Model not found",
                           f"model {str(model)[:100]!r} is not served here; models: "
                           f"{', '.join(model_ids)}")
    fmt = body.get("encoding_format")
    if fmt is None:
        fmt = "float"
    if fmt not in ("float", "base64"):
        raise _invalid("'encoding_format' must be 'float' or 'base64'")
    asked = body.get("dimensions")
    if asked is not None and (type(asked) is not int or asked != dimensions):
        raise _invalid(f"'dimensions' must be {dimensions} (this model's vectors cannot be "
                       "shortened)")
    user = body.get("user")
    if user is not None and type(user) is not str:
        raise _invalid("'user' must be a string")
    if "input" not in body:
        raise _invalid("the body needs 'input': a string or a list of strings")
    value = body["input"]
    texts = [value] if type(value) is str else value
    if type(texts) is not list or not texts:
        raise _invalid("'input' must be a string or a non-empty list of strings")
    if len(texts) > max_texts:
        raise ProblemError(413, "too-many-texts", "Too many texts",
                           f"{len(texts)} inputs in one request; the limit is "
                           f"max_texts={max_texts}")
    for i, text in enumerate(texts):
        if type(text) is not str:
            if type(text) is int or type(text) is list:
                raise _invalid("token-id input is not supported: send text")
            raise _invalid(f"'input' item {i} must be a string")
        if len(text) > max_chars:
            raise ProblemError(422, "text-too-long", "Text too long",
                               f"'input' item {i} has {len(text)} characters; the limit "
                               f"is max_chars={max_chars}")
    return EmbeddingsRequest(texts, fmt == "base64")


def render_embeddings(model_id: str, rows: Sequence[dict[str, Any]], as_base64: bool
                      ) -> bytes:
    """The answer body for the task's results (`embedding` row and `tokens` per text)."""
    data = []
    tokens = 0
    for i, row in enumerate(rows):
        vector = row["embedding"]
        tokens += row["tokens"]
        if as_base64:
            encoded: Any = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    return orjson.dumps(
        {"object": "list", "data": data, "model": model_id,
         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
        option=orjson.OPT_SERIALIZE_NUMPY)
