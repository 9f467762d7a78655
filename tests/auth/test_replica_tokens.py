"""Gateway tokens across replicas with default settings: a token minted by one replica is
accepted by the others (real `gateway serve` processes on one real Redis, sharing the
signing-key directory as docs/auth.md asks; no GATEWAY_TOKEN_ISSUER anywhere)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import jwt
import pytest

from tests.auth.conftest import bearer, wait_status
from tests.deployment import Deployment
from tests.servers import Backend

pytestmark = pytest.mark.slow

ROUTES = [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/",
           "scopes": ["api"]}]


def create_client(deployment: Deployment, tenant: str, scopes: str) -> tuple[str, str]:
    """`gateway clients create`, as an operator runs it: (client id, secret)."""
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "clients", "create", "--tenant", tenant,
         "--scopes", scopes],
        env={**os.environ, **deployment.env()}, cwd=deployment.workdir,
        capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.split())
    return values["CLIENT_ID"], values["CLIENT_SECRET"]


def test_a_token_from_one_replica_is_accepted_by_the_others(tmp_path, backend: Backend,
                                                           redis_server):
    deployment = Deployment(tmp_path, redis_server).configure(
        {"main": {"targets": [{"url": backend.url}]}}, ROUTES, {}, {"acme": {}})
    try:
        first = deployment.replica()  # creates the signing key the others then load
        others = [deployment.replica() for _ in range(2)]
        client_id, secret = create_client(deployment, "acme", "api")
        # The replicas see the new client within GATEWAY_KEY_CACHE_TTL.
        for _ in range(50):
            r = httpx.post(first.url + "/oauth/token", auth=(client_id, secret),
                           data={"grant_type": "client_credentials"})
            if r.status_code == 200:
                break
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        for replica in [first, *others]:
            # Until a replica has loaded the new client it reads as revoked: wait that out.
            for _ in range(100):
                answer = httpx.get(replica.url + "/api/x",
                                   headers={"Authorization": f"Bearer {token}"})
                if "revoked" not in answer.text:
                    break
                time.sleep(0.05)
            assert answer.status_code == 200, (replica.url, answer.text)
        # A token the replicas did not sign stays refused, whatever issuer it names.
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        refused = httpx.get(others[0].url + "/api/x",
                            headers={"Authorization": f"Bearer {forged}"})
        assert refused.status_code == 401
    finally:
        deployment.stop()


@pytest.mark.parametrize("configured", [False, True])
def test_a_configured_issuer_is_checked_exactly(auth_config, start_gateway, cli, configured):
    """Signed with our key but naming another replica's default issuer: ours by default;
    refused once GATEWAY_TOKEN_ISSUER names the one issuer."""
    overrides = {"token_issuer": "https://gateway.example.test"} if configured else {}
    gw = start_gateway(**overrides)
    out = dict(line.split("=", 1) for line in cli(
        "clients", "create", "--tenant", "demo", "--scopes", "sentiment").split())
    key = gw.app.auth.signing.active
    now = int(time.time())
    token = jwt.encode(
        {"iss": "http://127.0.0.1:1", "sub": out["CLIENT_ID"], "aud": "ai-gateway",
         "iat": now, "nbf": now, "exp": now + 600, "jti": "j", "scope": "sentiment",
         "tenant": "demo"},
        key.private_key, algorithm="ES256", headers={"kid": key.kid, "typ": "at+jwt"})
    if configured:
        r = gw.client.post("/v1/sentiment", headers=bearer(token), json={"text": "x"})
        assert r.status_code == 401 and "issuer is not trusted" in r.json()["detail"]
    else:  # accepted once the gateway has loaded the new client (within ~0.25 s)
        wait_status(gw.client, 200, "/v1/sentiment", bearer(token))
