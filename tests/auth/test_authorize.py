"""Authorization over HTTP: tenants' route lists and routes' scopes, each 403 case."""

from __future__ import annotations

from structlog.testing import capture_logs

from gateway.auth.api_keys import split_key
from tests.auth.conftest import bearer, wait_status


def test_routes_and_scopes_enforced(auth_config, start_gateway, cli):
    gw = start_gateway()
    full = cli("keys", "create", "--tenant", "demo").strip()
    only_classify = cli("keys", "create", "--tenant", "demo", "--scopes", "classify").strip()
    limited = cli("keys", "create", "--tenant", "limited").strip()
    everything = cli("keys", "create", "--tenant", "everything").strip()
    wait_status(gw.client, 200, "/v1/sentiment", bearer(everything))

    def call(path: str, key: str) -> int:
        return gw.client.post(path, headers=bearer(key), json={}).status_code

    # A key without --scopes holds whatever its tenant may call.
    assert call("/v1/sentiment", full) == 200 and call("/v1/classify", full) == 200
    # --scopes narrows it.
    assert call("/v1/classify", only_classify) == 200
    r = gw.client.post("/v1/sentiment", headers=bearer(only_classify))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "route 'sentiment' needs scope(s): sentiment"
    assert r.headers["www-authenticate"] == (
        'Bearer realm="gateway", error="insufficient_scope", scope="sentiment"')
    # A tenant may call only the routes tenants.yaml lists ("*": all of them).
    assert call("/v1/sentiment", limited) == 200
    r = gw.client.post("/v1/classify", headers=bearer(limited))
    assert r.status_code == 403 and "may not call route 'classify'" in r.json()["detail"]
    assert "www-authenticate" not in r.headers
    assert call("/v1/status/x", full) == 403  # demo does not list the unscoped route
    assert call("/v1/status/x", everything) == 200
    # Public routes need nothing at all and never see a tenant.
    r = gw.client.get("/public/hello")
    assert r.status_code == 200 and "x-tenant-id" not in r.json()["headers"]


def test_no_credential_in_any_log_line(auth_config, start_gateway, cli):
    gw = start_gateway(access_log=True)
    with capture_logs() as logs:
        key = cli("keys", "create", "--tenant", "demo").strip()
        out = cli("clients", "create", "--tenant", "demo", "--scopes", "sentiment")
        client = dict(line.split("=", 1) for line in out.split())
        wait_status(gw.client, 200, "/v1/sentiment", bearer(key))
        gw.client.post("/v1/sentiment", headers={"X-API-Key": key})
        gw.client.post("/v1/sentiment", headers=bearer(key[:-3] + "abc"))  # wrong secret
        r = gw.client.post("/oauth/token", auth=(client["CLIENT_ID"], client["CLIENT_SECRET"]),
                           data={"grant_type": "client_credentials"})
        token = r.json()["access_token"]
        gw.client.post("/v1/sentiment", headers=bearer(token))
        gw.client.post("/v1/sentiment", headers=bearer(token[:-5] + "xxxxx"))
        gw.client.post("/oauth/token", auth=(client["CLIENT_ID"], "wrong-secret"),
                       data={"grant_type": "client_credentials"})
    text = "\n".join(repr(entry) for entry in logs)
    assert any(e.get("event") == "request" and e.get("tenant") == "demo" for e in logs)
    assert any(e.get("event") == "token_issued" for e in logs)
    secrets = [key, split_key(key)[1], client["CLIENT_SECRET"], token, token.split(".")[2],
               "wrong-secret"]
    for secret in secrets:
        assert secret not in text
