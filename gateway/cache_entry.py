"""What the response cache stores, and whether an upstream answer may be stored at all.

Stores keep `CachedAnswer`s: the memory store the objects themselves (immutable, so
every hit can share one), the Redis store their encoding: one line of JSON metadata
(format version, status, headers, when stored) then the body bytes. A version other
than `ENTRY_VERSION` reads as a miss, so a format change never serves a misread entry;
bump it whenever the layout changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from gateway.proxy_response import ProxyResponse

ENTRY_VERSION = 1
HEADER_OVERHEAD, ENTRY_OVERHEAD = 130, 450  # bytes of CPython objects, measured
# Never stored: set per answer by the gateway, or meaningless once replayed.
_NOT_STORED = frozenset({b"age", b"x-cache", b"set-cookie", b"x-request-id"})


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored 2xx answer, replayed as a fresh ProxyResponse for each hit."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    stored_at: float  # wall clock, shared by replicas: gives the Age header

    @property
    def size(self) -> int:
        """Bytes it takes in the memory store, Python's object overheads included (a
        header's tuple and two bytes objects, the entry's own objects and LRU slot;
        tests/stores/test_contract.py checks the estimate against tracemalloc)."""
        return (len(self.body) + ENTRY_OVERHEAD
                + sum(len(k) + len(v) + HEADER_OVERHEAD for k, v in self.headers))

    def to_response(self, now: float | None = None) -> ProxyResponse:
        age = max(0, int((now if now is not None else time.time()) - self.stored_at))
        return ProxyResponse(self.status, [*self.headers, (b"age", str(age).encode())],
                             body=self.body, source="cache")


def encode_entry(answer: CachedAnswer) -> bytes:
    meta = {"v": ENTRY_VERSION, "s": answer.status, "t": answer.stored_at,
            "h": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in answer.headers]}
    return orjson.dumps(meta) + b"\n" + answer.body


def decode_entry(raw: bytes) -> CachedAnswer | None:
    """The entry, or None when it is of another format version or unreadable."""
    meta_end = raw.find(b"\n")
    if meta_end < 0:
        return None
    try:
        meta = orjson.loads(raw[:meta_end])
        if meta.get("v") != ENTRY_VERSION:
            return None
        headers = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["h"])
        return CachedAnswer(int(meta["s"]), headers, raw[meta_end + 1:], float(meta["t"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def cache_directives(value: bytes | None) -> dict[str, str]:
    """Cache-Control as {directive: argument}, names lower-case (RFC 9111 §5.2)."""
    if not value:
        return {}
    out = {}
    for part in value.decode("latin-1").split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            out[name.lower()] = arg.strip().strip('"')
    return out


def storable_ttl(response: ProxyResponse, route_ttl: float, max_entry_bytes: int) -> float:
    """How long this answer may be cached (0: not at all).

    Only whole (non-streamed) 2xx answers within the size cap; never one the upstream
    marks no-store, private or no-cache (the gateway cannot revalidate), nor one that
    sets a cookie. The upstream's s-maxage / max-age can shorten the route's TTL.
    """
    body = response.body
    if body is None or not 200 <= response.status < 300 or len(body) > max_entry_bytes:
        return 0.0
    if response.header(b"set-cookie") is not None:
        return 0.0
    cc = cache_directives(response.header(b"cache-control"))
    if "no-store" in cc or "private" in cc or "no-cache" in cc:
        return 0.0
    ttl = route_ttl
    for name in ("s-maxage", "max-age"):
        if name in cc:
            try:
                ttl = min(ttl, float(int(cc[name])))
            except ValueError:
                return 0.0
            break
    return max(ttl, 0.0)


def answer_for_storage(response: ProxyResponse) -> CachedAnswer:
    assert response.body is not None
    headers = tuple((bytes(k), bytes(v)) for k, v in response.headers if k not in _NOT_STORED)
    # bytes() copies only a mutable buffer: what the memory store shares must not change.
    return CachedAnswer(response.status, headers, bytes(response.body), time.time())
