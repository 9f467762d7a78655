"""The token endpoint's hard edges: odd Basic bytes, challenges, descriptions, one
authentication method per request, and metadata that the client libraries accept."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from structlog.testing import capture_logs

from tests.auth.test_oauth import TOKEN, _client, _ready

CHALLENGE = 'Basic realm="gateway"'
GRANT = b"grant_type=client_credentials"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def gw(auth_config, start_gateway):
    return start_gateway()


def _post(gw, body: bytes = GRANT, authorization: bytes | None = None):
    headers: dict[str, bytes | str] = dict(FORM)
    if authorization is not None:
        headers["authorization"] = authorization
    return gw.client.post(TOKEN, content=body, headers=headers)


def _b64(raw: bytes) -> bytes:
    return b"Basic " + base64.b64encode(raw)


def _assert_oauth_error(r, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == error and body["error_description"], body
    assert body["status"] == status and body["request_id"] == r.headers["x-request-id"]
    return body


def test_undecodable_basic_credentials_are_invalid_client(gw, cli):
    client_id, secret = _client(cli)
    _ready(gw, client_id, secret)
    latin1 = f"{client_id}:{secret}é".encode("latin-1")  # a real id, a latin-1 secret
    with capture_logs() as logs:
        for authorization in (
            _b64(b"\xff:\xff"),                 # base64 of bytes that are not UTF-8
            b"Basic \xff\xfe",                  # raw bytes, not base64 at all
            _b64(latin1),
            _b64(f"{client_id}:{secret}".encode("utf-16")),
            _b64(client_id.encode()),          # no colon
            _b64(b":" + secret.encode()),       # empty client id
            _b64(client_id.encode() + b":"),    # empty secret
            b"Basic !!!!", b"Basic", b"basic " + base64.b64encode(b"x:y")[:-1],
        ):
            r = _post(gw, authorization=authorization)
            _assert_oauth_error(r, 401, "invalid_client")
            assert r.headers["www-authenticate"] == CHALLENGE, authorization
            assert secret not in r.text
    assert not [e for e in logs if e["log_level"] in ("error", "critical")], logs
    # The latin-1 secret decoded the other way round is still not the client's secret.
    r = _post(gw, authorization=_b64(f"{client_id}:{secret}é".encode()))
    _assert_oauth_error(r, 401, "invalid_client")


def test_every_401_carries_a_basic_challenge(gw, cli):
    client_id, secret = _client(cli)
    _ready(gw, client_id, secret)
    for body in (
        GRANT + f"&client_id={client_id}&client_secret=wrong".encode(),
        GRANT + b"&client_id=gwc_nobody&client_secret=x",
        GRANT,                                  # no credentials at all
        GRANT + f"&client_id={client_id}".encode(),  # an id without a secret
    ):
        r = _post(gw, body)
        _assert_oauth_error(r, 401, "invalid_client")
        assert r.headers["www-authenticate"] == CHALLENGE, body
    r = _post(gw, authorization=_b64(f"{client_id}:wrong".encode()))
    assert r.status_code == 401 and r.headers["www-authenticate"] == CHALLENGE
    r = _post(gw, authorization=b"Bearer " + secret.encode())  # not client authentication
    assert r.status_code == 401 and r.headers["www-authenticate"] == CHALLENGE


def test_grant_type_errors_carry_a_description(gw, cli):
    client_id, secret = _client(cli)
    _ready(gw, client_id, secret)
    basic = _b64(f"{client_id}:{secret}".encode())
    for authorization in (basic, None):
        r = _post(gw, b"grant_type=password", authorization)
        body = _assert_oauth_error(r, 400, "unsupported_grant_type")
        assert "client_credentials" in body["error_description"]
        assert body["detail"] == body["error_description"]
        r = _post(gw, b"grant_type=", authorization)
        body = _assert_oauth_error(r, 400, "invalid_request")
        assert "grant_type" in body["error_description"]
    # The weird value is not echoed back into the description (RFC 6749 §5.2 charset).
    r = _post(gw, b'grant_type=%22%0Aevil', basic)
    assert "evil" not in _assert_oauth_error(r, 400, "unsupported_grant_type")[
        "error_description"]


def test_one_authentication_method_per_request(gw, cli):
    id_a, secret_a = _client(cli)
    id_b, secret_b = _client(cli)
    _ready(gw, id_a, secret_a)
    _ready(gw, id_b, secret_b)
    basic_a = _b64(f"{id_a}:{secret_a}".encode())
    # Basic for A plus a form client_id of B: refused, no token for either.
    r = _post(gw, GRANT + f"&client_id={id_b}".encode(), basic_a)
    body = _assert_oauth_error(r, 400, "invalid_request")
    assert "another client" in body["error_description"]
    # Basic plus a form secret (even the same client's): two methods.
    r = _post(gw, GRANT + f"&client_id={id_a}&client_secret={secret_a}".encode(), basic_a)
    _assert_oauth_error(r, 400, "invalid_request")
    # Two Authorization headers naming two clients.
    r = gw.client.post(TOKEN, content=GRANT, headers=[
        ("content-type", FORM["content-type"]), ("authorization", basic_a.decode()),
        ("authorization", _b64(f"{id_b}:{secret_b}".encode()).decode())])
    _assert_oauth_error(r, 400, "invalid_request")
    # Basic repeating its own client_id in the body is one method: accepted.
    r = _post(gw, GRANT + f"&client_id={id_a}".encode(), basic_a)
    assert r.status_code == 200, r.text


def test_metadata_validates_with_authlib(gw):
    meta = gw.client.get("/.well-known/oauth-authorization-server").json()
    AuthorizationServerMetadata(meta).validate()
    # What the discovery clients read: no browser flow is advertised.
    assert meta["response_types_supported"] == ["none"]
    assert "authorization_endpoint" not in meta
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post"}


def test_token_lifetime_bounds_are_documented():
    from annotated_types import Ge, Le

    from gateway.settings import Settings

    meta = Settings.model_fields["token_lifetime"].metadata
    low = next(m.ge for m in meta if isinstance(m, Ge))
    high = next(m.le for m in meta if isinstance(m, Le))
    doc = (Path(__file__).parents[2] / "docs" / "auth.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| `GATEWAY_TOKEN_LIFETIME`"))
    # Whole numbers only: the default 3600 must not pass for the minimum 60.
    assert re.search(rf"\b{low}\b", row) and re.search(rf"\b{high}\b", row), row

