"""The semantic cache's two halves outside the stores: what is embedded, and by whom.

`semantic_parts(body, field)` splits a JSON request body into the text to embed (the
top-level member `field`: a string, a list of strings, or a list of chat messages whose
`content` strings are taken) and a digest of everything else. Only requests whose
everything-else is byte-for-byte equal (after JSON canonicalization) can share an answer
by similarity: `{"text": "hi", "task": "a"}` never answers `{"text": "hey", "task": "b"}`.
Pure, like cache_key.py.

`Embedder.embed(url, text, seconds)` asks the bundled embeddings service (or any
OpenAI-compatible /v1/embeddings) for the text's vector: one shared httpx client, made on
first use. Any failure (down, slow, a bad answer) is None: the request is then an exact
cache MISS, never an error.
"""

from __future__ import annotations

import base64
import hashlib

import httpx
import numpy as np
import orjson
import structlog

from gateway.stores.vectors import Vector

log = structlog.get_logger("gateway.semantic")


def semantic_parts(body: bytes, field: str) -> tuple[str, str] | None:
    """(text to embed, sha256 of the rest), or None when the body has no such text."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or field not in doc:
        return None
    value = doc.pop(field)
    if type(value) is str:
        text = value
    elif type(value) is list and value:
        parts = []
        for item in value:
            if type(item) is dict:
                item = item.get("content")
            if type(item) is not str:
                return None
            parts.append(item)
        text = "\n".join(parts)
    else:
        return None
    if not text.strip():
        return None
    rest = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return text, hashlib.sha256(rest).hexdigest()


class Embedder:
    """Vectors from an embeddings endpoint, for the semantic cache."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    async def embed(self, base_url: str, text: str, seconds: float) -> Vector | None:
        if self._client is None:
            self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=64))
        try:
            r = await self._client.post(
                base_url.rstrip("/") + "/v1/embeddings",
                content=orjson.dumps({"input": text, "encoding_format": "base64"}),
                headers={"content-type": "application/json"}, timeout=seconds)
            if r.status_code != 200:
                log.warning("semantic_embed_failed", status=r.status_code)
                return None
            encoded = orjson.loads(r.content)["data"][0]["embedding"]
            vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)
        except (httpx.HTTPError, orjson.JSONDecodeError, KeyError, IndexError, TypeError,
                ValueError) as exc:
            log.warning("semantic_embed_failed", error=type(exc).__name__)
            return None
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
