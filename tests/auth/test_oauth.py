"""OAuth2 client credentials, JWKS and metadata, over HTTP against a real gateway."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from gateway.auth.service import MISS_REFRESH_INTERVAL
from tests.auth.conftest import bearer, wait_status

TOKEN = "/oauth/token"


def _client(cli, scopes: str = "sentiment,classify", tenant: str = "demo") -> tuple[str, str]:
    # Only the CLI's own lines: the gateway thread's log lines share the captured stdout.
    printed = cli("clients", "create", "--tenant", tenant, "--scopes", scopes)
    out = dict(line.split("=", 1) for line in printed.splitlines()
               if line.startswith("CLIENT_"))
    return out["CLIENT_ID"], out["CLIENT_SECRET"]


@pytest.fixture
def gw(auth_config, start_gateway):
    return start_gateway()


def _token(gw, client_id, secret, **form):
    return gw.client.post(TOKEN, auth=(client_id, secret),
                          data={"grant_type": "client_credentials", **form})


def _ready(gw, client_id, secret):
    """Wait (≤ 1 s) until the gateway has loaded the new client."""
    deadline = time.monotonic() + 1.0
    while (r := _token(gw, client_id, secret)).status_code != 200:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.02)
    return r


def test_token_success_basic_and_form_and_use(gw, cli):
    client_id, secret = _client(cli)
    r = _ready(gw, client_id, secret)
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["scope"] == "sentiment classify"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["tenant"] == "demo" and claims["sub"] == client_id
    assert claims["iss"] == gw.app.settings.issuer_url and claims["aud"] == "ai-gateway"
    assert claims["exp"] - claims["iat"] == 3600 and claims["jti"]
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "ES256"
    # Form-field client authentication works too.
    r = gw.client.post(TOKEN, data={"grant_type": "client_credentials",
                                    "client_id": client_id, "client_secret": secret,
                                    "scope": "sentiment"})
    assert r.status_code == 200 and r.json()["scope"] == "sentiment"
    narrow = r.json()["access_token"]
    # The tokens work; the narrowed one only where its scope reaches.
    r = gw.client.post("/v1/classify", headers=bearer(body["access_token"]))
    assert r.status_code == 200 and r.json()["headers"]["x-tenant-id"] == "demo"
    assert gw.client.post("/v1/sentiment", headers=bearer(narrow)).status_code == 200
    r = gw.client.post("/v1/classify", headers=bearer(narrow))
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_a_new_client_gets_a_token_at_once(auth_config, start_gateway, cli):
    # The slowest poll allowed, so only the re-check on an unknown client can explain
    # a token issued straight after `clients create`, every time.
    gw = start_gateway(key_cache_ttl=0.5)
    for _ in range(3):
        time.sleep(MISS_REFRESH_INTERVAL)  # the re-checks' own rate limit
        client_id, secret = _client(cli, scopes="sentiment")
        r = _token(gw, client_id, secret)
        assert r.status_code == 200, r.text


def test_an_unknown_client_is_called_unknown(gw, cli):
    client_id, _ = _client(cli, scopes="sentiment")
    for r in (_token(gw, client_id, "wrong"), _token(gw, "gwc_nobody", "x"),
              gw.client.post(TOKEN, data={"grant_type": "client_credentials",
                                          "client_id": "gwc_nobody", "client_secret": "x"})):
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        assert "unknown client" in r.json()["error_description"]
        assert "methods" not in r.text


def test_token_errors(gw, cli):
    client_id, secret = _client(cli, scopes="sentiment")
    _ready(gw, client_id, secret)

    r = _token(gw, client_id, "wrong")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")
    r = gw.client.post(TOKEN, data={"grant_type": "client_credentials",
                                    "client_id": "gwc_nobody", "client_secret": "x"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"] == 'Basic realm="gateway"'  # form auth too
    r = gw.client.post(TOKEN, data={"grant_type": "client_credentials"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"

    r = _token(gw, client_id, secret, scope="classify")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = _token(gw, client_id, secret, scope="sentiment classify")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"

    r = gw.client.post(TOKEN, auth=(client_id, secret), data={"grant_type": "password"})
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"

    for kwargs in (
        {"data": {"scope": "sentiment"}},  # no grant_type
        {"json": {"grant_type": "client_credentials"}},  # not form-encoded
        {"content": b"grant_type=client_credentials&grant_type=client_credentials",
         "headers": {"content-type": "application/x-www-form-urlencoded"}},
        {"data": {"grant_type": "client_credentials", "client_secret": secret}},  # 2 methods
    ):
        r = gw.client.post(TOKEN, auth=(client_id, secret), **kwargs)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", kwargs
        body = r.json()
        assert body["status"] == 400 and body["request_id"] == r.headers["x-request-id"]
        assert r.headers["content-type"] == "application/json"
        assert secret not in r.text

    assert gw.client.get(TOKEN).status_code == 405


def test_tampered_and_foreign_tokens_refused(gw, cli):
    client_id, secret = _client(cli)
    token = _ready(gw, client_id, secret).json()["access_token"]
    assert gw.client.post("/v1/sentiment", headers=bearer(token)).status_code == 200
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = base64.urlsafe_b64encode(
        json.dumps({**claims, "tenant": "everything"}).encode()).rstrip(b"=").decode()
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    for bad in (f"{header}.{forged}.{signature}", f"{header}.{payload}.{flipped}",
                f"{header}.{payload}."):
        r = gw.client.post("/v1/sentiment", headers=bearer(bad))
        assert r.status_code == 401, bad
        assert r.headers["www-authenticate"] == 'Bearer realm="gateway", error="invalid_token"'


def test_revoked_client_token_stops_within_a_second(gw, cli):
    client_id, secret = _client(cli)
    token = _ready(gw, client_id, secret).json()["access_token"]
    assert gw.client.post("/v1/sentiment", headers=bearer(token)).status_code == 200
    cli("clients", "revoke", client_id)
    assert wait_status(gw.client, 401, "/v1/sentiment", bearer(token)) < 1.0
    assert _token(gw, client_id, secret).status_code == 401
    assert "gwc_" in cli("clients", "list") and secret not in cli("clients", "list")


def test_jwks_metadata_and_signing_key_rotation(gw, cli):
    client_id, secret = _client(cli)
    old_token = _ready(gw, client_id, secret).json()["access_token"]
    jwks = gw.client.get("/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == [jwt.get_unverified_header(old_token)["kid"]]
    key = jwks["keys"][0]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and "d" not in key
    # The published key verifies the token (what a resource server would do).
    public = jwt.PyJWK(key).key
    jwt.decode(old_token, public, algorithms=["ES256"], audience="ai-gateway")

    meta = gw.client.get("/.well-known/oauth-authorization-server").json()
    issuer = gw.app.settings.issuer_url
    assert meta["issuer"] == issuer and meta["token_endpoint"] == issuer + TOKEN
    assert meta["jwks_uri"] == issuer + "/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert meta["scopes_supported"] == ["classify", "sentiment"]

    cli("signing-key", "rotate")
    deadline = time.monotonic() + 2
    while len(gw.client.get("/.well-known/jwks.json").json()["keys"]) != 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    new_token = _token(gw, client_id, secret).json()["access_token"]
    new_kid = jwt.get_unverified_header(new_token)["kid"]
    assert new_kid != key["kid"]
    assert gw.client.get("/.well-known/jwks.json").json()["keys"][0]["kid"] == new_kid
    for token in (old_token, new_token):  # the retired key still verifies its tokens
        assert gw.client.post("/v1/sentiment", headers=bearer(token)).status_code == 200


def test_an_oversized_token_request_is_a_413_problem(gw):
    r = gw.client.post(TOKEN, content=b"grant_type=client_credentials&pad=" + b"x" * 9000,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413 and r.json()["request_id"] == r.headers["x-request-id"]
