"""Properties of the OAuth paths: whatever bytes a token request carries in its body and
its Authorization header, the answer is a 4xx with an OAuth error body, never a 5xx; and
whatever a presented bearer token holds, short of the real one, the answer is the
contract's 401. Driven over HTTP against a real gateway, with a real client registered
so that its id and its real token turn up too."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth.test_oauth import TOKEN, _client, _ready

OAUTH_ERRORS = {"invalid_request", "invalid_client", "invalid_scope",
                "unsupported_grant_type", "unauthorized_client", "invalid_grant"}
FIELDS = ["grant_type", "client_id", "client_secret", "scope", "x"]
# The bytes an HTTP field value may hold (RFC 9110 §5.5: VCHAR, SP, HTAB, obs-text);
# anything else the client library refuses to send at all.
FIELD_BYTES = st.binary(max_size=80).map(
    lambda b: bytes(c for c in b if c in (9, 32) or 33 <= c <= 126 or c >= 128).strip())


@pytest.fixture
def gw(auth_config, start_gateway):
    return start_gateway()


def _authorizations(client_id: str) -> st.SearchStrategy[bytes | None]:
    raw_pair = st.tuples(st.sampled_from([client_id.encode(), b"gwc_x", b""]) | st.binary(),
                         st.binary(max_size=40))
    return st.one_of(
        st.none(),
        st.builds(lambda p: b"Basic " + base64.b64encode(p[0] + b":" + p[1]), raw_pair),
        st.builds(lambda b: b"Basic " + base64.b64encode(b), st.binary(max_size=60)),
        st.builds(lambda b: b"Basic " + b, FIELD_BYTES),
        st.builds(lambda b: b"Bearer " + b, FIELD_BYTES),
        FIELD_BYTES,
    )


def _bodies(client_id: str) -> st.SearchStrategy[bytes]:
    value = st.sampled_from([b"client_credentials", client_id.encode(), b""]) | st.binary(
        max_size=40)
    pairs = st.lists(st.tuples(st.sampled_from(FIELDS), value), max_size=6)
    encoded = pairs.map(lambda ps: b"&".join(
        n.encode() + b"=" + quote_from_bytes(v).encode() for n, v in ps))
    return st.one_of(encoded, st.binary(max_size=200), encoded.map(lambda b: b + b"%"))


def test_any_token_request_bytes_get_a_4xx_oauth_error(gw, cli):
    client_id, secret = _client(cli)
    _ready(gw, client_id, secret)

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(body=_bodies(client_id), authorization=_authorizations(client_id),
           form_encoded=st.booleans())
    def check(body: bytes, authorization: bytes | None, form_encoded: bool) -> None:
        headers: dict[str, bytes] = {}
        if form_encoded:
            headers["content-type"] = b"application/x-www-form-urlencoded"
        if authorization and authorization.strip(b" \t"):  # a field value has no edge OWS
            headers["authorization"] = authorization.strip(b" \t")
        r = gw.client.post(TOKEN, content=body, headers=headers)
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        answer = r.json()
        assert answer["error"] in OAUTH_ERRORS and answer["error_description"], answer
        assert answer["request_id"] == r.headers["x-request-id"]
        if r.status_code == 401:
            assert r.headers["www-authenticate"] == 'Basic realm="gateway"'

    check()


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _decodes_as(token: bytes, real: bytes) -> bool:
    """The same JWT in another spelling: base64url's last character carries unused bits,
    so an edit there can leave the decoded signature as it was."""
    def decoded(t: bytes) -> list[bytes] | None:
        try:
            return [base64.urlsafe_b64decode(p + b"=" * (-len(p) % 4)) for p in t.split(b".")]
        except ValueError:
            return None

    return decoded(token.strip(b" \t")) == decoded(real)


def _presented_tokens(real: bytes) -> st.SearchStrategy[bytes]:
    """What a bearer token parser meets: noise, JWT-shaped forgeries (any header, e.g.
    alg none or HS256, any payload, any signature) and the real token altered."""
    json_part = st.dictionaries(st.sampled_from(["alg", "kid", "typ", "iss", "aud", "exp",
                                                 "tenant", "scope", "sub", "crit"]),
                                st.none() | st.integers() | st.text(max_size=12),
                                max_size=5).map(lambda d: json.dumps(d).encode())
    segment = st.one_of(json_part.map(_b64url), st.binary(max_size=40).map(_b64url),
                        FIELD_BYTES)
    header, payload, signature = real.split(b".")

    def altered(i: int, c: int) -> bytes:
        i %= len(real)
        return real[:i] + bytes([c]) + real[i + 1:] if real[i] != c else real + b"x"

    return st.one_of(
        FIELD_BYTES,
        st.lists(segment, min_size=1, max_size=4).map(b".".join),
        st.tuples(segment, segment).map(lambda s: b".".join((s[0], payload, s[1]))),
        segment.map(lambda s: b".".join((header, s, signature))),
        st.tuples(st.integers(0, 10_000), st.sampled_from(b"AQZaqz09-_.=")).map(
            lambda t: altered(*t)),
        st.just(b".".join((_b64url(b'{"alg":"none","typ":"JWT"}'), payload, b""))),
    )


def test_any_presented_bearer_token_but_the_real_one_is_a_401(gw, cli):
    """Whatever a bearer token holds, a request with it gets the contract's 401
    (problem+json, `error="invalid_token"`), never a 5xx and never a pass, and the real
    token still works after the forgeries."""
    client_id, secret = _client(cli)
    real = _ready(gw, client_id, secret).json()["access_token"].encode()

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(token=_presented_tokens(real))
    def check(token: bytes) -> None:
        if _decodes_as(token, real):
            return
        # A field value has no edge whitespace (the client library refuses to send it).
        value = (b"Bearer " + token).strip(b" \t")
        r = gw.client.post("/v1/classify", headers={"authorization": value})
        assert r.status_code == 401, (token, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="gateway"'), challenge
        if token.strip(b" \t"):  # "Bearer" alone presents nothing: no error code (RFC 6750)
            assert 'error="invalid_token"' in challenge, challenge
        assert r.json()["status"] == 401

    check()
    ok = gw.client.post("/v1/classify", headers={"authorization": b"Bearer " + real})
    assert ok.status_code == 200
