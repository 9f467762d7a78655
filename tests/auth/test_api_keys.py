"""API keys end to end: a real gateway over HTTP, keys issued by the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gateway.auth.api_keys import hash_secret, issue_key, secret_matches, split_key
from tests.auth.conftest import bearer, make_key, wait_status, write_tenants

CHALLENGE = 'Bearer realm="gateway", error="invalid_token"'


def test_key_format_and_hashing():
    key, record = issue_key("demo")
    assert key.startswith(f"gw_{record.key_id}_")
    key_id, secret = split_key(key)
    assert key_id == record.key_id and len(secret) >= 43  # 32 random bytes, base64url
    assert record.secret_hash == hash_secret(secret) and secret not in repr(record)
    assert secret_matches(secret, record.secret_hash)
    other = "B" if secret.endswith("A") else "A"  # a secret one character off
    assert not secret_matches(secret[:-1] + other, record.secret_hash)
    assert split_key("gw_short_" + secret) is None and split_key("sk_x") is None


def test_create_use_revoke_file_store(auth_config, backend, start_gateway, cli):
    gw = start_gateway()
    key = cli("keys", "create", "--tenant", "demo", "--name", "ci").strip()
    assert wait_status(gw.client, 200, "/v1/sentiment", bearer(key)) < 1.0
    r = gw.client.post("/v1/sentiment", headers=bearer(key), json={"text": "I love it"})
    assert r.status_code == 200, r.text
    seen = r.json()["headers"]
    assert seen["x-tenant-id"] == "demo" and "authorization" not in seen
    # X-API-Key is accepted too, and never forwarded.
    r = gw.client.post("/v1/sentiment", headers={"X-API-Key": key})
    assert r.status_code == 200 and "x-api-key" not in r.json()["headers"]

    listing = cli("keys", "list", "--tenant", "demo")
    key_id = split_key(key)[0]
    assert key_id in listing and split_key(key)[1] not in listing and "active" in listing

    cli("keys", "revoke", key_id)
    took = wait_status(gw.client, 401, "/v1/sentiment", bearer(key), within=1.0)
    assert took < 1.0
    r = gw.client.post("/v1/sentiment", headers=bearer(key))
    assert r.headers["www-authenticate"] == CHALLENGE
    assert r.json()["detail"] == "the API key has been revoked"
    assert "revoked" in cli("keys", "list")


def test_new_key_works_at_once(auth_config, backend, start_gateway, cli):
    # A script that creates a key and calls straight away must not race the store poll.
    gw = start_gateway()
    gw.client.get("/healthz")
    for _ in range(3):
        time.sleep(0.15)  # unknown ids re-check the store at most every 100 ms
        key = cli("keys", "create", "--tenant", "demo").strip()
        r = gw.client.post("/v1/sentiment", headers=bearer(key), json={"text": "hi"})
        assert r.status_code == 200, r.text


def test_cli_subprocess_sees_same_store(auth_config, start_gateway, tmp_path):
    gw = start_gateway()
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "gateway", "keys", "create", "--tenant",
                          "demo", "--scopes", "sentiment", "--expires-in", "30d"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    key = out.stdout.strip()
    assert out.stdout.count("\n") == 1 and "shown only now" in out.stderr
    assert wait_status(gw.client, 200, "/v1/sentiment", bearer(key)) < 1.0
    assert gw.client.post("/v1/classify", headers=bearer(key)).status_code == 403


def test_every_401(auth_config, start_gateway, cli, tmp_path):
    gw = start_gateway()
    data = tmp_path / "data"
    good = cli("keys", "create", "--tenant", "demo").strip()
    key_id, secret = split_key(good)
    expired, _ = make_key(data, "demo", expires_in=10, now=time.time() - 60)
    ghost, _ = make_key(data, "ghost")  # tenant not in tenants.yaml
    disabled, _ = make_key(data, "off")
    wait_status(gw.client, 200, "/v1/sentiment", bearer(good))
    wait_status(gw.client, 401, "/v1/sentiment", bearer(expired))  # visible once loaded

    cases = {
        "no credentials": ({}, None),
        "basic scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
        "bearer without value": ({"Authorization": "Bearer"}, None),
        "not a key nor a jwt": (bearer("hello"), "neither"),
        "unknown key id": (bearer(f"gw_{'a' * 12}_{secret}"), "not valid"),
        "wrong secret": (bearer(f"gw_{key_id}_{secret[:-2]}xx"), "not valid"),
        "truncated": (bearer(good[:20]), "not valid"),
        "expired": (bearer(expired), "expired"),
        "unknown tenant": (bearer(ghost), "unknown or disabled"),
        "disabled tenant": (bearer(disabled), "unknown or disabled"),
        "garbage jwt": (bearer("a.b.c"), "well-formed"),
    }
    for name, (headers, detail) in cases.items():
        r = gw.client.post("/v1/sentiment", headers=headers, json={})
        assert r.status_code == 401, name
        assert r.headers["content-type"] == "application/problem+json", name
        body = r.json()
        assert body["status"] == 401 and body["request_id"] == r.headers["x-request-id"]
        if detail is None:  # RFC 6750 §3.1: no error code without credentials
            assert r.headers["www-authenticate"] == 'Bearer realm="gateway"', name
        else:
            assert r.headers["www-authenticate"] == CHALLENGE, name
            assert detail in body["detail"], (name, body)
            assert secret not in r.text
    # A public route needs nothing; a tenant disabled by a reload is refused at once.
    assert gw.client.get("/public/x").status_code == 200
    write_tenants(tmp_path, {"demo": {"enabled": False}})
    wait_status(gw.client, 401, "/v1/sentiment", bearer(good), within=2.0)


def test_rotation_grace(auth_config, start_gateway, cli, tmp_path):
    gw = start_gateway()
    old = cli("keys", "create", "--tenant", "demo", "--name", "app").strip()
    new = cli("keys", "rotate", split_key(old)[0], "--grace", "1s").strip()
    assert new != old
    wait_status(gw.client, 200, "/v1/sentiment", bearer(new))
    # Both work during the grace period; then only the successor.
    assert gw.client.post("/v1/sentiment", headers=bearer(old)).status_code == 200
    wait_status(gw.client, 401, "/v1/sentiment", bearer(old), within=2.0)
    assert gw.client.post("/v1/sentiment", headers=bearer(new)).status_code == 200
    listing = cli("keys", "list")
    assert "expired" in listing and listing.count(" app ") == 2


def test_cli_refuses_unknown_tenant_and_scope(auth_config, cli):
    assert "unknown tenant 'nobody'" in cli("keys", "create", "--tenant", "nobody", ok=False)
    assert "unknown scope" in cli("clients", "create", "--tenant", "demo", "--scopes",
                                  "sentimnet", ok=False)
    assert "no key" in cli("keys", "revoke", "abcdefghijkl", ok=False)


def test_no_cli_answer_repeats_a_secret(auth_config, cli, capsys):
    from gateway.cli import main

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out + out.err

    key = cli("keys", "create", "--tenant", "demo").strip()
    key_id, secret = split_key(key)
    other = cli("keys", "create", "--tenant", "demo").strip()
    # The whole key works in place of its id, and only the id is printed.
    code, said = run("keys", "rotate", other)
    assert code == 0 and split_key(other)[0] in said and split_key(other)[1] not in said
    code, said = run("keys", "revoke", key)
    assert code == 0 and said.strip() == f"revoked key {key_id}"
    assert "revoked" in cli("keys", "list")
    # Refusals name the id at most: a well-formed key of no record, a pasted secret.
    stranger = issue_key("demo")[0]
    code, said = run("keys", "revoke", stranger)
    assert code == 1 and split_key(stranger)[0] in said and split_key(stranger)[1] not in said
    # "--" before a pasted secret: one in 64 starts with "-", which argparse would take
    # for an option (its usage error names no secret either, but it is not the answer
    # under test).
    for typo in (secret, key[:-1].replace("_", "-"), "gw_" + secret):
        for action in ("revoke", "rotate"):
            code, said = run("keys", action, "--", typo)
            assert code == 1 and "neither a key id nor a key" in said
            assert secret[:20] not in said
    client = dict(line.split("=", 1) for line in cli(
        "clients", "create", "--tenant", "demo", "--scopes", "sentiment").split())
    code, said = run("clients", "revoke", "--", client["CLIENT_SECRET"])
    assert code == 1 and client["CLIENT_SECRET"] not in said and "not a client id" in said
    code, said = run("clients", "revoke", client["CLIENT_ID"])
    assert code == 0 and said.strip() == f"revoked client {client['CLIENT_ID']}"


@pytest.mark.slow
def test_redis_store_two_replicas(auth_config, redis_env, tmp_path, monkeypatch, cli):
    from tests.processes import GatewayProcess

    for k, v in redis_env.items():
        monkeypatch.setenv(k, v)
    gateways = [GatewayProcess(redis_env, tmp_path).start() for _ in range(2)]
    try:
        import httpx

        clients = [httpx.Client(base_url=g.url, timeout=5) for g in gateways]
        key = cli("keys", "create", "--tenant", "demo").strip()
        for c in clients:
            wait_status(c, 200, "/v1/sentiment", bearer(key))
        cli("keys", "revoke", split_key(key)[0])
        revoked_at = time.monotonic()
        for c in clients:
            wait_status(c, 401, "/v1/sentiment", bearer(key),
                        within=1.0 - (time.monotonic() - revoked_at))
        for c in clients:
            c.close()
    finally:
        for g in gateways:
            g.stop()
    for g in gateways:
        log = g.log_path.read_text()
        assert split_key(key)[1] not in log and key not in log
        assert "request" in log  # the access log did run


def test_unreachable_store_fails_closed(auth_config, redis_server, start_gateway, cli,
                                        monkeypatch):
    monkeypatch.setenv("GATEWAY_REDIS_URL", redis_server.url)
    gw = start_gateway(redis_url=redis_server.url, key_store_max_staleness=0.5)
    key = cli("keys", "create", "--tenant", "demo").strip()
    wait_status(gw.client, 200, "/v1/sentiment", bearer(key))
    redis_server.stop()
    try:
        # Revocations could go unseen now: past the staleness bound, refuse with 503.
        wait_status(gw.client, 503, "/v1/sentiment", bearer(key), within=2.0)
        assert gw.client.get("/readyz").json()["checks"]["credentials"]["ok"] is False
    finally:
        redis_server.start()
    # Back (this Redis keeps nothing on disk, so the key is gone): answers resume.
    wait_status(gw.client, 401, "/v1/sentiment", bearer(key), within=2.0)


def test_authorization_and_x_api_key_must_agree(auth_config, backend, start_gateway, tmp_path):
    gw = start_gateway()
    key_a, _ = make_key(tmp_path / "data", "demo")
    key_b, _ = make_key(tmp_path / "data", "everything")
    assert wait_status(gw.client, 200, "/v1/sentiment", bearer(key_b)) < 1.0
    before = len(backend.requests)
    r = gw.client.post("/v1/sentiment", headers={**bearer(key_a), "X-API-Key": key_b})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert "X-API-Key" in body["detail"] and body["request_id"] == r.headers["x-request-id"]
    assert key_a not in r.text and key_b not in r.text
    assert len(backend.requests) == before  # refused before the upstream
    # The same credential in both headers is one credential.
    r = gw.client.post("/v1/sentiment", headers={**bearer(key_a), "X-API-Key": key_a})
    assert r.status_code == 200, r.text
    # A non-Bearer Authorization (a proxy's Basic, say) does not conflict with the key.
    r = gw.client.post("/v1/sentiment", headers={"Authorization": "Basic eDp5",
                                                 "X-API-Key": key_a})
    assert r.status_code == 200, r.text
