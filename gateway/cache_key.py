"""Response cache keys: pure functions, tenant-scoped by construction.

    cache_key(scope_id, route, method, path, query, vary_headers, body_digest) -> str

The scope is the tenant id, so two tenants sending the same request never share an
entry, unless the route is marked `shared` (scope `SHARED_SCOPE`). Requests with no
principal (public routes) share the `ANONYMOUS_SCOPE`. Both markers hold a character
tenant ids cannot contain, so no tenant can be named like them.

The key reads `<KEY_VERSION>:<scope>:<route>:<sha256 of the rest>`: the scope and route
stay visible (an operator can find or purge a tenant's entries), the rest is hashed so
any path, query or header value makes a fixed-length, injection-proof key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson

KEY_VERSION = "c1"
SHARED_SCOPE = "*shared"
ANONYMOUS_SCOPE = "*anonymous"


def body_digest(body: bytes, content_type: bytes | None) -> str:
    """sha256 of the body; JSON bodies canonicalized first (sorted keys, compact), so
    semantically equal bodies hit the same entry. Invalid JSON is hashed as raw bytes."""
    data = body
    if body and content_type is not None and b"json" in content_type.lower():
        try:
            data = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            data = body
    return hashlib.sha256(data).hexdigest()


def cache_key(scope_id: str, route: str, method: str, path: str, query: bytes,
              vary_headers: Sequence[tuple[str, bytes | None]], body_digest: str) -> str:
    """One entry's key. `vary_headers` are (lower-case name, value or None if absent)."""
    h = hashlib.sha256()
    # Length-prefixed fields: no two different requests can concatenate to the same bytes.
    for part in (method.encode(), path.encode("utf-8", "surrogateescape"), query,
                 body_digest.encode()):
        h.update(len(part).to_bytes(4, "big") + part)
    for name, value in vary_headers:
        h.update(len(name).to_bytes(4, "big") + name.encode())
        if value is None:
            h.update(b"\xff\xff\xff\xff")  # absent differs from empty
        else:
            h.update(len(value).to_bytes(4, "big") + value)
    return f"{KEY_VERSION}:{scope_id}:{route}:{h.hexdigest()}"
