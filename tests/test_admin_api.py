"""The admin API and its CLI mirror, against a real gateway on loopback."""

from __future__ import annotations

import time

import pytest

from gateway.auth.api_keys import split_key
from gateway.cli import main as cli_main
from tests.auth.conftest import make_key
from tests.llm.conftest import Provider, bearer, write_llm_config
from tests.llm.test_tokens import settled

ADMIN = "admin-token-" + "x" * 32


@pytest.fixture
def providers():
    pair = (Provider("vllm"), Provider("openai"))
    yield pair
    for p in pair:
        p.server.stop()


@pytest.fixture
def admin_gateway(tmp_path, providers, start_gateway, monkeypatch):
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-provider-secret-123456")
    write_llm_config(tmp_path, providers[0].url, providers[1].url,
                     tiers={"pro": {"rate": "50/minute", "tokens": "1000/hour",
                                    "budget": "2/day", "max_in_flight": 4}})
    key, _ = make_key(tmp_path / "data", "acme")
    gw = start_gateway(admin_token=ADMIN)
    return gw, key


def secret_of(key: str) -> str:
    """A key's secret part (which may itself hold an underscore)."""
    parts = split_key(key)
    assert parts is not None
    return parts[1]


def admin(gw, method: str, path: str, **kw):
    return gw.client.request(method, path, headers=bearer(ADMIN), **kw)


def test_needs_its_own_token_never_a_tenants(admin_gateway, start_gateway, tmp_path):
    gw, key = admin_gateway
    for headers in ({}, bearer(key), bearer("wrong-" + "y" * 40)):
        r = gw.client.get("/admin/routes", headers=headers)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert admin(gw, "GET", "/admin/routes").status_code == 200
    # Tenant routes do not take the admin token either.
    r = gw.client.post("/v1/chat/completions", headers=bearer(ADMIN),
                       json={"model": "llama-3-8b", "messages": []})
    assert r.status_code == 401
    off = start_gateway()  # no admin token: the API is not there
    r = off.client.get("/admin/routes", headers=bearer(ADMIN))
    assert r.status_code == 404 and "admin API is off" in r.json()["detail"]


def test_routes_show_upstream_health_and_no_secret(admin_gateway, providers):
    gw, key = admin_gateway
    providers[0].fake.fail_next = [(429, {"Retry-After": "30"})]
    gw.client.post("/v1/chat/completions", headers=bearer(key),
                   json={"model": "llama-3-8b", "messages": [], "max_tokens": 1})
    r = admin(gw, "GET", "/admin/routes")
    assert "sk-provider-secret" not in r.text
    chat = next(x for x in r.json()["routes"] if x["name"] == "chat")
    assert chat["llm"] == "chat" and chat["methods"] == ["POST"]
    groups = {g["name"]: g for g in chat["upstreams"]}
    vllm = groups["vllm"]["targets"][0]
    assert vllm["usable"] is False and 25 < vllm["parked_seconds"] <= 30
    openai = groups["openai"]["targets"][0]
    assert openai["usable"] is True and openai["circuit"] == "closed"
    assert openai["headers"] == {"Authorization": "Bearer <secret from env FAKE_OPENAI_KEY>"}


def test_tenants_show_limits_and_current_usage(admin_gateway):
    gw, key = admin_gateway
    before = {t["id"]: t for t in admin(gw, "GET", "/admin/tenants").json()["tenants"]}
    assert before["acme"]["limits"] == {"rate": ["50 per 1 minute"], "max_in_flight": 4,
                                        "tokens": ["1000 per 1 hour"],
                                        "budget": ["2 per 1 day"]}
    assert before["acme"]["usage"]["rate"][0]["remaining"] == 50
    assert before["acme"]["usage"]["tokens"][0]["remaining"] == 1000
    for _ in range(3):
        r = gw.client.post("/v1/chat/completions", headers=bearer(key), json={
            "model": "llama-3-8b", "max_tokens": 5,
            "messages": [{"role": "user", "content": "a b c d"}]})
        assert r.status_code == 200
    settled(gw, 3)
    usage = next(t for t in admin(gw, "GET", "/admin/tenants").json()["tenants"]
                 if t["id"] == "acme")["usage"]
    assert usage["rate"][0]["remaining"] == 47
    assert usage["tokens"][0]["remaining"] == 1000 - 3 * 9  # settled to the usage
    assert usage["in_flight"] == 0
    assert usage["budget"][0]["limit"] == 2
    assert usage["budget"][0]["remaining"] == pytest.approx(2 - 3 * (4 * 0.5 + 5 * 1.5) / 1e6)


def test_keys_issue_list_revoke_and_the_cli_mirrors_them(admin_gateway, monkeypatch,
                                                         capsys):
    gw, old_key = admin_gateway
    r = admin(gw, "POST", "/admin/keys", json={"tenant": "acme", "name": "ci"})
    assert r.status_code == 201
    created = r.json()
    new_key = created["key"]
    assert gw.client.get("/v1/models", headers=bearer(new_key)).status_code == 200
    listed = admin(gw, "GET", "/admin/keys", params={"tenant": "acme"}).text
    assert created["id"] in listed and new_key not in listed
    assert secret_of(new_key) not in listed and secret_of(old_key) not in listed
    bad = admin(gw, "POST", "/admin/keys", json={"tenant": "nobody"})
    assert bad.status_code == 400 and "unknown tenant" in bad.json()["detail"]
    assert admin(gw, "POST", "/admin/keys", content=b"{").status_code == 400
    assert admin(gw, "DELETE", f"/admin/keys/{created['id']}").status_code == 200
    deadline = time.monotonic() + 3
    while gw.client.get("/v1/models", headers=bearer(new_key)).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.05)
    assert admin(gw, "DELETE", "/admin/keys/aaaaaaaaaaaa").status_code == 404

    # The CLI speaks the same API.
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN)
    capsys.readouterr()
    assert cli_main(["admin", "--url", gw.url, "keys", "create", "--tenant", "acme"]) == 0
    out = capsys.readouterr()
    cli_key = out.out.strip()
    assert cli_key.startswith("gw_") and "created key" in out.err
    assert gw.client.get("/v1/models", headers=bearer(cli_key)).status_code == 200
    assert cli_main(["admin", "--url", gw.url, "keys", "list"]) == 0
    assert secret_of(cli_key) not in capsys.readouterr().out
    assert cli_main(["admin", "--url", gw.url, "keys", "revoke", cli_key]) == 0
    assert cli_main(["admin", "--url", gw.url, "routes"]) == 0
    assert '"chat"' in capsys.readouterr().out
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "z" * 40)
    assert cli_main(["admin", "--url", gw.url, "tenants"]) == 1
    assert "401" in capsys.readouterr().err


def test_config_check_swaps_a_good_config_and_names_a_bad_ones_problems(
        admin_gateway, tmp_path, monkeypatch, capsys):
    gw, _ = admin_gateway
    generation = gw.holder.generation
    r = admin(gw, "POST", "/admin/config/check")
    assert r.status_code == 200 and r.json()["generation"] == generation + 1
    routes = tmp_path / "routes.yaml"
    routes.write_text(routes.read_text().replace("api: chat", "api: chatter"))
    r = admin(gw, "POST", "/admin/config/check")
    assert r.status_code == 422 and r.json()["ok"] is False
    problem = r.json()["problems"][0]
    assert problem["file"] == str(routes) and problem["field"] == "routes[0].llm.api"
    assert problem["line"] is not None
    assert gw.holder.current.routes["chat"].llm.api == "chat"  # the last good one stays
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN)
    capsys.readouterr()
    assert cli_main(["admin", "--url", gw.url, "check"]) == 2
    assert f"{routes}:" in capsys.readouterr().err


def test_openapi_documents_the_admin_api_under_its_own_tag(admin_gateway):
    gw, _ = admin_gateway
    doc = gw.client.get("/openapi.json").json()
    assert {"name": "admin"} .items() <= next(t for t in doc["tags"]
                                              if t["name"] == "admin").items()
    ops = [op for path, item in doc["paths"].items() if path.startswith("/admin/")
           for op in item.values()]
    assert len(ops) == 6 and all(op["tags"] == ["admin"] for op in ops)
    assert all(op["security"] == [{"adminToken": []}] for op in ops)
    assert doc["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
