"""Property: whatever bytes a token request carries in its body and its Authorization
header, the answer is a 4xx with an OAuth error body, never a 5xx. Driven over HTTP
against a real gateway, with a real client registered so that its id turns up too."""

from __future__ import annotations

import base64
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
