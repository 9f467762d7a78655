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
import struct
from collections.abc import Sequence

import orjson

KEY_VERSION = "c1"
SHARED_SCOPE = "*shared"
ANONYMOUS_SCOPE = "*anonymous"
_length = struct.Struct(">I").pack  # a field's 4-byte big-endian length prefix


def body_digest(body: bytes, content_type: bytes | None) -> str:
    """sha256 of the body; JSON bodies canonicalized first (sorted keys, compact), so
    semantically equal bodies hit the same entry. Invalid JSON is hashed as raw bytes."""
    data = body
    # `find`, not `in`: bytes' `in` first tries its operand as an int (a TypeError made
    # and dropped on every call).
    if body and content_type is not None and content_type.lower().find(b"json") >= 0:
        try:
            data = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            data = body
    return hashlib.sha256(data).hexdigest()


def cache_key(scope_id: str, route: str, method: str, path: str, query: bytes,
              vary_headers: Sequence[tuple[str, bytes | None]], body_digest: str) -> str:
    """One entry's key. `vary_headers` are (lower-case name, value or None if absent)."""
    m, p = method.encode(), path.encode("utf-8", "surrogateescape")
    d = body_digest.encode()
    # Length-prefixed fields: no two different requests can concatenate to the same bytes.
    chunks = [_length(len(m)), m, _length(len(p)), p, _length(len(query)), query,
              _length(len(d)), d]
    for name, value in vary_headers:
        chunks += (_length(len(name)), name.encode())
        if value is None:
            chunks.append(b"\xff\xff\xff\xff")  # absent differs from empty
        else:
            chunks += (_length(len(value)), value)
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    return f"{KEY_VERSION}:{scope_id}:{route}:{digest}"
