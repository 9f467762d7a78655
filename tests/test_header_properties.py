"""Property: whatever headers a client sends (any names, any field bytes, repeated,
hop-by-hop ones, credentials, the gateway's own), the answer is never a 5xx, and what
reaches the upstream follows the contract: no hop-by-hop header nor any the client's
Connection names, no client credential, the gateway's own X-Request-ID, traceparent and
X-Forwarded-For exactly once, and every other header as the client sent it. Driven over
HTTP against a real gateway in front of a real echoing backend."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write_routes

NEVER_FORWARDED = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                   "te", "trailer", "upgrade", "proxy-connection", "authorization",
                   "x-api-key", "cookie", "x-tenant-id"}
SET_BY_GATEWAY = {"x-request-id", "traceparent", "x-forwarded-for"}
NAMES = sorted(NEVER_FORWARDED | SET_BY_GATEWAY | {"accept", "cache-control", "user-agent",
                                                   "x-custom", "x-model", "content-type"})
TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
# RFC 9110 §5.5 field bytes (VCHAR, SP, HTAB, obs-text), without edge whitespace.
FIELD_BYTES = st.binary(max_size=60).map(
    lambda b: bytes(c for c in b if c in (9, 32) or 33 <= c <= 126 or c >= 128).strip(b" \t"))
FIELDS = st.lists(st.tuples(st.sampled_from(NAMES) | st.text(TCHAR, min_size=1, max_size=12),
                            FIELD_BYTES), max_size=10)
# Half the cases also name a header they send in Connection (RFC 9110 §7.6.1: dropped).
HEADERS = st.tuples(FIELDS, st.booleans()).map(lambda t: t[0] + (
    [("x-model", b"named"), ("connection", b"X-Model, keep-alive")] if t[1] else []))


@pytest.fixture
def gw(tmp_path, backend, start_gateway):
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": backend.url}]}},
                 [{"name": "open", "match": {"prefix": "/public"}, "upstream": "main",
                   "public": True}])
    return start_gateway()


def test_any_client_headers_reach_the_upstream_as_the_contract_says(gw, backend):
    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(headers=HEADERS)
    def check(headers: list[tuple[str, bytes]]) -> None:
        # Framing and routing headers are the server's (tests/test_http_protocol.py).
        headers = [(n, v) for n, v in headers if n not in ("host", "content-length",
                                                           "transfer-encoding", "expect")]
        before = len(backend.requests)
        r = gw.client.get("/public/echo", headers=[(n.encode(), v) for n, v in headers])
        assert r.status_code < 500, (headers, r.status_code, r.text)
        if r.status_code != 200:
            assert r.headers["content-type"] == "application/problem+json"
            return
        assert len(backend.requests) == before + 1
        received = backend.requests[-1]["headers"]
        named = {t.strip().lower() for n, v in headers if n == "connection"
                 for t in v.decode("latin-1").split(",")}
        assert not (NEVER_FORWARDED | named) - SET_BY_GATEWAY & set(received), headers
        assert received["x-request-id"] == r.headers["x-request-id"]
        assert received["traceparent"].startswith("00-")
        assert received["x-forwarded-for"].endswith("127.0.0.1")
        sent: dict[str, list[bytes]] = {}
        for name, value in headers:
            sent.setdefault(name, []).append(value)
        for name, values in sent.items():
            if name in NEVER_FORWARDED | SET_BY_GATEWAY | named | {"user-agent", "accept"}:
                continue
            # The echo keeps a repeated field's first value (Starlette's Headers mapping).
            assert received[name] == values[0].decode("latin-1"), name

    check()
