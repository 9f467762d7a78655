"""The jobs' config: `async:` on routes, the job API's reserved paths, tenants' webhook
prefixes and queue caps; every refusal names file, line and field."""

from __future__ import annotations

import pytest
import yaml

from gateway.config import load_config
from gateway.errors import ConfigError
from tests.conftest import write_routes
from tests.limits.conftest import write_policies


def _load(tmp_path, routes, tenants=None, tiers=None):
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": "http://x:1"}]}},
                 routes)
    write_policies(tmp_path / "policies", tiers or {}, tenants or {})
    return load_config(tmp_path / "routes.yaml", tmp_path / "policies")


def _problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [p.text for p in exc.value.problems]


def test_async_routes_load_with_their_settings(tmp_path):
    config = _load(tmp_path, [{"name": "a", "match": {"path": "/a"}, "upstream": "main",
                               "async": {"only": True, "result_ttl": 60, "max_attempts": 5}}],
                   tenants={"t": {"tier": "x"}}, tiers={"x": {"max_queued_jobs": 7}})
    route = config.routes["a"]
    assert route.spec.async_ is not None and route.spec.async_.only
    assert route.replays_body  # its body is stored with the job
    assert config.limits.lookup("t", "a").max_queued_jobs == 7


@pytest.mark.parametrize("route, field, message", [
    ({"public": True, "async": {}}, "routes[0].async", "a public route cannot run jobs"),
    ({"async": {"result_ttl": 0}}, "routes[0].async.result_ttl", "greater than 0"),
    ({"async": {"sometimes": True}}, "routes[0].async.sometimes", "unknown field"),
    ({"match": {"path": "/v1/jobs"}}, "routes[0].match.path", "reserved"),
    ({"match": {"prefix": "/v1/jobs/"}}, "routes[0].match.prefix", "reserved"),
    ({"match": {"path": "/v1/jobs/{id}"}}, "routes[0].match.path", "reserved"),
])
def test_bad_async_routes_are_refused_naming_file_line_and_field(tmp_path, route, field,
                                                                  message):
    spec = {"name": "a", "match": {"path": "/a"}, "upstream": "main", **route}
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, [{"name": "ok", "match": {"path": "/ok"}, "upstream": "main"}, spec])
    [problem] = _problems(exc)
    field = field.replace("routes[0]", "routes[1]")
    lines = (tmp_path / "routes.yaml").read_text().splitlines()
    line = int(problem.split(":")[1])
    assert problem.startswith(f"{tmp_path / 'routes.yaml'}:{line}: {field}: "), problem
    assert message in problem
    assert field.split(".")[-1].split("[")[0] in lines[line - 1] or "- name" in lines[line - 1]


def test_a_catch_all_v1_route_stays_valid_and_leaves_the_job_api_alone(tmp_path):
    config = _load(tmp_path, [{"name": "v1", "match": {"prefix": "/v1"}, "upstream": "main"}])
    assert config.router.match("POST", "/v1/jobsearch")[0].name == "v1"


@pytest.mark.parametrize("url", ["hooks.example.com/x", "ftp://h/x", "https://h/x?y=1",
                                 "https://user:pw@h/x", "https://h"])
def test_webhook_prefixes_must_be_absolute_http_urls_with_a_path(tmp_path, url):
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, [{"name": "a", "match": {"path": "/a"}, "upstream": "main"}],
              tenants={"t": {"webhooks": {"allowed_urls": ["https://ok.example/", url]}}})
    [problem] = _problems(exc)
    assert "tenants.yaml:" in problem
    assert "tenants.t.webhooks.allowed_urls" in problem and "absolute http(s) URL" in problem
    tenants_line = yaml.safe_load((tmp_path / "policies" / "tenants.yaml").read_text())
    assert tenants_line["tenants"]["t"]["webhooks"]["allowed_urls"][1] == url


def test_an_llm_route_cannot_run_jobs(tmp_path):
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": "http://x:1"}]}},
                 [{"name": "chat", "match": {"path": "/v1/chat/completions",
                                             "methods": ["POST"]},
                   "llm": {"api": "chat"}, "async": {}}],
                 models={"m": {"serve": [{"upstream": "main"}]}})
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "routes.yaml", None)
    [problem] = _problems(exc)
    assert "routes[0].async: an llm route cannot run jobs" in problem
