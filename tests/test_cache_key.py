"""Cache keys and entries: pure functions, no I/O."""

from __future__ import annotations

import pytest

from gateway.cache_entry import (
    ENTRY_VERSION,
    CachedAnswer,
    decode_entry,
    encode_entry,
    storable_ttl,
)
from gateway.cache_key import ANONYMOUS_SCOPE, SHARED_SCOPE, body_digest, cache_key
from gateway.proxy_response import ProxyResponse

JSON = b"application/json"


def key(**kw):
    args = {"scope_id": "acme", "route": "r", "method": "POST", "path": "/p", "query": b"",
            "vary_headers": [], "body_digest": body_digest(b'{"a":1}', JSON)}
    args.update(kw)
    return cache_key(**args)


def test_key_is_scoped_and_readable():
    k = key()
    assert k.startswith("c1:acme:r:") and len(k.rsplit(":", 1)[1]) == 64
    assert key(scope_id=SHARED_SCOPE).startswith("c1:*shared:r:")
    # Markers cannot collide with a tenant id (ids never hold '*').
    assert "*" in SHARED_SCOPE and "*" in ANONYMOUS_SCOPE


@pytest.mark.parametrize("change", [
    {"scope_id": "beta"}, {"route": "s"}, {"method": "GET"}, {"path": "/q"},
    {"query": b"x=1"}, {"vary_headers": [("accept-language", b"fr")]},
    {"body_digest": body_digest(b'{"a":2}', JSON)},
])
def test_every_component_changes_the_key(change):
    assert key(**change) != key()


def test_absent_header_differs_from_empty_and_fields_do_not_run_together():
    assert key(vary_headers=[("x", None)]) != key(vary_headers=[("x", b"")])
    assert key(path="/a", query=b"b") != key(path="/ab", query=b"")


def test_json_bodies_are_canonical_and_others_raw():
    assert body_digest(b'{"b": 1, "a": [1, 2]}', JSON) == body_digest(b'{"a":[1,2],"b":1}', JSON)
    assert body_digest(b'{"b": 1, "a": 2}', b"text/plain") != body_digest(b'{"a":2,"b":1}',
                                                                        b"text/plain")
    assert body_digest(b"{not json", JSON) == body_digest(b"{not json", None)


def test_entry_round_trip_and_version_mismatch_is_a_miss():
    answer = CachedAnswer(201, ((b"content-type", b"application/json"),), b"\n{}\x00", 100.0)
    raw = encode_entry(answer)
    assert decode_entry(raw) == answer
    resp = answer.to_response(now=107.9)
    assert resp.status == 201 and resp.body == b"\n{}\x00" and resp.source == "cache"
    assert (b"age", b"7") in resp.headers
    other = raw.replace(f'"v":{ENTRY_VERSION}'.encode(), f'"v":{ENTRY_VERSION + 1}'.encode())
    assert decode_entry(other) is None
    assert decode_entry(b"garbage") is None and decode_entry(b"{}\nbody") is None


def resp(status=200, body=b"x", **headers):
    return ProxyResponse(status, [(k.replace("_", "-").encode(), v.encode())
                                  for k, v in headers.items()], body=body)


def test_storable_ttl_rules():
    assert storable_ttl(resp(), 60, 100) == 60
    assert storable_ttl(resp(cache_control="public, max-age=5"), 60, 100) == 5
    assert storable_ttl(resp(cache_control="max-age=500, s-maxage=7"), 60, 100) == 7
    for cc in ("no-store", "private", "no-cache", "max-age=0", "max-age=abc"):
        assert storable_ttl(resp(cache_control=cc), 60, 100) == 0, cc
    assert storable_ttl(resp(status=404), 60, 100) == 0
    assert storable_ttl(resp(status=304), 60, 100) == 0
    assert storable_ttl(resp(body=b"x" * 101), 60, 100) == 0
    assert storable_ttl(resp(body=None), 60, 100) == 0
    assert storable_ttl(resp(set_cookie="s=1"), 60, 100) == 0
