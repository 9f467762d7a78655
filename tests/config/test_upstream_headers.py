"""Upstream headers in routes.yaml: static values, secrets from env or files, per-target
overrides; refusals name file, line and field; secrets never printed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from gateway.cli import main as cli_main
from gateway.config import load_config
from gateway.errors import ConfigError
from tests.conftest import write_routes

SECRET = "sk-test-0123456789abcdef"


def write_llm_routes(tmp_path: Path, url: str, group_headers: dict, target_headers: dict
                     | None = None, second_url: str | None = None) -> Path:
    targets = [{"url": url, "headers": target_headers or {}}]
    if second_url is not None:
        targets.append({"url": second_url, "weight": 0})
    return write_routes(tmp_path / "routes.yaml",
                        {"provider": {"targets": targets, "headers": group_headers}},
                        [{"name": "echo", "match": {"prefix": "/api"}, "upstream": "provider",
                          "rewrite": "/", "public": True}])


def test_static_env_and_file_headers_compile_and_stay_redacted(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVIDER_KEY", SECRET)
    (tmp_path / "org.secret").write_text("org-secret-value\n")
    path = write_llm_routes(tmp_path, "http://127.0.0.1:9", {
        "Authorization": {"env": "PROVIDER_KEY", "prefix": "Bearer "},
        "OpenAI-Organization": "org-static",
    }, {"X-Org-Secret": {"file": "org.secret"}, "OpenAI-Organization": "org-target"})
    config = load_config(path)
    target = config.groups["provider"].targets[0]
    sent = {h.name: h.value for h in target.headers}
    assert sent == {"Authorization": "Bearer " + SECRET, "OpenAI-Organization": "org-target",
                    "X-Org-Secret": "org-secret-value"}
    # Neither the target's, the group's nor the config's repr shows a secret.
    for text in (repr(target), repr(config.groups["provider"]), repr(target.headers)):
        assert SECRET not in text and "org-secret-value" not in text
    assert str(tmp_path / "org.secret") in config.watched_files


@pytest.mark.parametrize(("headers", "field", "message"), [
    ({"Authorization": "Bearer sk-inline"}, "upstreams.provider.headers",
     "Authorization carries a credential"),
    ({"X-Goog-Api-Key": "inline"}, "upstreams.provider.headers", "carries a credential"),
    ({"X-Request-ID": "mine"}, "upstreams.provider.headers", "set by the gateway itself"),
    ({"Authorization": {"env": "NOT_SET_ANYWHERE"}},
     "upstreams.provider.headers.Authorization",
     "environment variable NOT_SET_ANYWHERE is not set"),
    ({"Authorization": {"file": "missing.key"}}, "upstreams.provider.headers.Authorization",
     "cannot read secret file"),
    ({"Authorization": {"env": "A", "file": "b"}}, "upstreams.provider.headers.Authorization",
     "exactly one of 'env' or 'file'"),
])
def test_refusals_name_file_line_and_field(tmp_path, monkeypatch, headers, field, message):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write_llm_routes(tmp_path, "http://127.0.0.1:9", headers)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    problem = exc.value.problems[0]
    assert problem.file == str(path) and problem.line is not None
    assert problem.field == field and message in problem.message
    assert "sk-inline" not in str(exc.value)


def test_check_prints_where_secrets_come_from_never_their_values(tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("PROVIDER_KEY", SECRET)
    path = write_llm_routes(tmp_path, "http://127.0.0.1:9", {
        "Authorization": {"env": "PROVIDER_KEY", "prefix": "Bearer "}, "X-Static": "shown"})
    assert cli_main(["check", str(path)]) == 0
    out = capsys.readouterr()
    assert "Authorization: Bearer <secret from env PROVIDER_KEY>" in out.out
    assert "X-Static: shown" in out.out
    assert SECRET not in out.out + out.err


def test_upstream_gets_configured_headers_not_the_clients(tmp_path, monkeypatch, backend,
                                                          start_gateway):
    monkeypatch.setenv("PROVIDER_KEY", SECRET)
    key_file = tmp_path / "second.key"
    key_file.write_text("first-file-secret")
    write_llm_routes(tmp_path, backend.url, {
        "Authorization": {"env": "PROVIDER_KEY", "prefix": "Bearer "},
        "OpenAI-Organization": "org-static",
    }, {"X-Extra-Token": {"file": str(key_file)}})
    gw = start_gateway()
    r = gw.client.get("/api/x", headers={"Authorization": "Bearer client-credential",
                                         "OpenAI-Organization": "client-org",
                                         "X-Custom": "kept"})
    assert r.status_code == 200
    seen = r.json()["headers"]
    assert seen["authorization"] == "Bearer " + SECRET
    assert seen["openai-organization"] == "org-static"  # the configured one replaces it
    assert seen["x-extra-token"] == "first-file-secret"
    assert seen["x-custom"] == "kept"
    assert "client-credential" not in str(seen)
    # Rotating the secret file reloads the config: the next request carries the new one.
    key_file.write_text("second-file-secret")
    deadline = time.monotonic() + 5
    while gw.client.get("/api/x").json()["headers"]["x-extra-token"] != "second-file-secret":
        assert time.monotonic() < deadline, "the rotated secret was not picked up"
        time.sleep(0.05)


def test_shipped_starter_parses_with_headers_section(tmp_path):
    # A group may carry headers and no target overrides; an empty mapping is fine.
    path = write_routes(tmp_path / "routes.yaml", {"g": {"targets": [{"url": "http://a"}],
                                                         "headers": {}}},
                        [{"name": "r", "match": {"prefix": "/"}, "upstream": "g"}])
    assert load_config(path).groups["g"].targets[0].headers == ()
    assert yaml.safe_load(path.read_text())["upstreams"]["g"]["headers"] == {}


def test_health_checks_send_the_targets_headers(tmp_path, monkeypatch, backend,
                                                start_gateway):
    monkeypatch.setenv("PROVIDER_KEY", SECRET)
    write_routes(tmp_path / "routes.yaml", {"provider": {
        "targets": [{"url": backend.url}],
        "headers": {"Authorization": {"env": "PROVIDER_KEY", "prefix": "Bearer "}},
        "health_check": {"path": "/health-with-key", "interval": 0.1}}},
        [{"name": "echo", "match": {"prefix": "/api"}, "upstream": "provider",
          "public": True}])
    start_gateway()
    deadline = time.monotonic() + 5
    while not backend.hits["/health-with-key"]:
        assert time.monotonic() < deadline, "no health check arrived"
        time.sleep(0.05)
    seen = [r for r in backend.requests if r["path"] == "/health-with-key"][-1]
    assert seen["headers"]["authorization"] == "Bearer " + SECRET
