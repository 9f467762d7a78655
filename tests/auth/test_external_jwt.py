"""JWTs from an external identity provider whose JWKS a real local server publishes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.settings import ExternalIssuer
from tests.auth.conftest import bearer
from tests.servers import ThreadedServer

ISSUER = "https://idp.example.test"
AUDIENCE = "gateway-api"


class IdentityProvider:
    """A JWKS endpoint whose keys the test can rotate; counts fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.server = ThreadedServer(Starlette(routes=[Route("/jwks", self.jwks)]))

    async def jwks(self, request: Request) -> JSONResponse:
        self.fetches += 1
        return JSONResponse({"keys": [
            {**RSAAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True),
             "kid": kid, "use": "sig", "alg": "RS256"}
            for kid in self.published
        ]})

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(65537, 2048)
        self.published.append(kid)

    def token(self, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now,
                "exp": now + 300, "org": "demo", "permissions": ["sentiment"], **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    p = IdentityProvider()
    p.add_key("k1")
    p.server.start()
    yield p
    p.server.stop()


@pytest.fixture
def gw(auth_config, start_gateway, idp):
    issuer = ExternalIssuer(issuer=ISSUER, jwks_url=idp.server.url + "/jwks",
                            audience=AUDIENCE, tenant_claim="org",
                            scopes_claim="permissions", algorithms=["RS256"])
    return start_gateway(external_issuers=[issuer], jwks_min_refresh_interval=0.5,
                         jwt_leeway=30)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "iat": now, "exp": now + 300,
            "org": "demo", "permissions": ["sentiment"], **extra}


def test_external_token_accepted_with_mapped_claims(gw, idp):
    r = gw.client.post("/v1/sentiment", headers=bearer(idp.token()))
    assert r.status_code == 200, r.text
    assert r.json()["headers"]["x-tenant-id"] == "demo"
    # Its scopes come from the configured claim: no classify permission, no classify.
    assert gw.client.post("/v1/classify", headers=bearer(idp.token())).status_code == 403
    # A space-separated string works as well as a list.
    ok = idp.token(permissions="sentiment classify")
    assert gw.client.post("/v1/classify", headers=bearer(ok)).status_code == 200
    # Within the leeway, an exp just past is still fine.
    assert gw.client.post("/v1/sentiment", headers=bearer(
        idp.token(exp=int(time.time()) - 5))).status_code == 200


def test_attacks_refused(gw, idp):
    public_pem = idp.keys["k1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    hs_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": "k1"}, _claims())
    hs_sig = _b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
    now = int(time.time())
    other = rsa.generate_private_key(65537, 2048)
    attacks = {
        "alg none": (_unsigned({"alg": "none", "kid": "k1"}, _claims()) + ".", "algorithm"),
        "HS256 keyed with the public key": (f"{hs_input}.{hs_sig}", "algorithm"),
        "wrong iss": (idp.token(iss="https://evil.example.test"), "issuer is not trusted"),
        "wrong aud": (idp.token(aud="someone-else"), "not meant for this gateway"),
        "no aud": (idp.token(aud=None), "not valid"),
        "no exp": (idp.token(exp=None), "not valid"),
        "expired": (idp.token(exp=now - 3600), "expired"),
        "nbf in the future": (idp.token(nbf=now + 3600), "not valid yet"),
        "signed by a stranger": (jwt.encode(_claims(), other, algorithm="RS256",
                                            headers={"kid": "k1"}), "not valid"),
        "no tenant claim": (idp.token(org=None), "names no tenant"),
        "unknown tenant": (idp.token(org="ghost"), "unknown or disabled"),
        "disabled tenant": (idp.token(org="off"), "unknown or disabled"),
    }
    for name, (token, detail) in attacks.items():
        r = gw.client.post("/v1/sentiment", headers=bearer(token))
        assert r.status_code == 401, name
        assert r.headers["www-authenticate"].endswith('error="invalid_token"'), name
        assert detail in r.json()["detail"], (name, r.json())
    # The genuine article still works after all that.
    assert gw.client.post("/v1/sentiment", headers=bearer(idp.token())).status_code == 200


def test_key_rotation_and_refetch_budget(gw, idp):
    assert gw.client.post("/v1/sentiment", headers=bearer(idp.token())).status_code == 200
    assert idp.fetches == 1
    # The provider rotates: a new kid is fetched on first sight (once the budget allows).
    idp.add_key("k2")
    time.sleep(0.5)
    r = gw.client.post("/v1/sentiment", headers=bearer(idp.token(kid="k2")))
    assert r.status_code == 200 and idp.fetches == 2
    # Made-up kids cost at most one fetch per interval, however many arrive.
    before = idp.fetches
    time.sleep(0.5)
    for i in range(20):
        bogus = jwt.encode(_claims(jti=str(i)), idp.keys["k1"], algorithm="RS256",
                           headers={"kid": f"nope-{i}"})
        assert gw.client.post("/v1/sentiment", headers=bearer(bogus)).status_code == 401
    assert idp.fetches - before == 1
    # Both kids stay valid while published.
    assert gw.client.post("/v1/sentiment", headers=bearer(idp.token())).status_code == 200
