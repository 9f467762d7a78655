"""routes.yaml `models:` and `llm:` routes, tenants' `models:`: refusals name file, line
and field; a good file compiles each model's chain."""

from __future__ import annotations

import copy

import pytest
import yaml

from gateway.config import load_config
from gateway.errors import ConfigError

ROUTES = {
    "version": 1,
    "upstreams": {"vllm": {"targets": [{"url": "http://127.0.0.1:9"}]},
                  "openai": {"targets": [{"url": "http://127.0.0.1:10"}]}},
    "models": {"llama": {"serve": [{"upstream": "vllm", "model": "meta/llama"},
                                   {"upstream": "openai", "model": "gpt-4o-mini"}],
                         "price": {"prompt": 1.5, "completion": 3}}},
    "routes": [{"name": "chat", "match": {"path": "/v1/chat/completions"},
                "llm": {"api": "chat"}},
               {"name": "models", "match": {"path": "/v1/models"}, "llm": {"api": "models"}}],
}


def load(tmp_path, routes, tenants=None):
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(routes, sort_keys=False))
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "tenants.yaml").write_text(yaml.safe_dump(
        {"version": 1, "tenants": tenants or {"acme": {}}}, sort_keys=False))
    return load_config(tmp_path / "routes.yaml", policies)


def test_models_compile_into_chains_and_llm_routes_into_their_groups(tmp_path):
    config = load(tmp_path, ROUTES, {"acme": {}, "trial": {"models": ["llama"]}})
    llama = config.models["llama"]
    assert [(g.name, name) for g, name in llama.chain] == [("vllm", "meta/llama"),
                                                          ("openai", "gpt-4o-mini")]
    assert llama.prompt_price == 1.5e-6 and llama.completion_price == 3e-6
    assert [g.name for g in config.routes["chat"].groups] == ["vllm", "openai"]
    assert config.routes["models"].groups == ()
    assert config.tenant_models == {"acme": None, "trial": frozenset({"llama"})}


def broken(change):
    doc = copy.deepcopy(ROUTES)
    change(doc)
    return doc


@pytest.mark.parametrize(("doc", "tenants", "file", "field", "message"), [
    (broken(lambda d: d["routes"][0].update(upstream="vllm")), None, "routes.yaml",
     "routes[0]", "an llm route takes its upstreams from models:"),
    (broken(lambda d: d["routes"][0].pop("llm")), None, "routes.yaml", "routes[0]",
     "a route needs an upstream (or an llm: section)"),
    (broken(lambda d: d["models"]["llama"]["serve"][1].update(upstream="nope")), None,
     "routes.yaml", "models.llama.serve[1].upstream", "unknown upstream group 'nope'"),
    (broken(lambda d: d["routes"][0]["llm"].update(api="chatter")), None, "routes.yaml",
     "routes[0].llm.api", "Input should be"),
    (ROUTES, {"acme": {"models": ["llama", "gpt-5"]}}, "tenants.yaml",
     "tenants.acme.models[1]", "unknown model 'gpt-5'"),
    (broken(lambda d: d["models"]["llama"].update(price={"prompt": -1})), None,
     "routes.yaml", "models.llama.price.prompt", "greater than or equal to 0"),
])
def test_refusals_name_file_line_and_field(tmp_path, doc, tenants, file, field, message):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, doc, tenants)
    problem = exc.value.problems[0]
    assert problem.file.endswith(file) and problem.line is not None
    assert (problem.field, message in problem.message) == (field, True), problem.text


def test_token_and_budget_limits_follow_the_precedence(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "tiers.yaml").write_text(yaml.safe_dump({"version": 1, "tiers": {
        "default": {"tokens": "1000/minute", "budget": "5/day"},
        "pro": {"tokens": "100000/minute"}}}))
    config = load(tmp_path, ROUTES, {"acme": {"tier": "pro"},
                                     "big": {"tier": "pro", "overrides": {"budget": "50/day"}}})
    acme, big = (config.limits.lookup(t, "chat") for t in ("acme", "big"))
    assert [str(i) for i in acme.tokens] == ["100000 per 1 minute"]
    assert [str(i) for i in acme.budget] == ["5 per 1 day"]  # from the default tier
    assert [str(i) for i in big.budget] == ["50 per 1 day"]
    (tmp_path / "policies" / "tiers.yaml").write_text(yaml.safe_dump({"version": 1, "tiers": {
        "pro": {"tokens": "lots"}}}))
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, ROUTES, {"acme": {"tier": "pro"}})
    assert exc.value.problems[0].field == "tiers.pro.tokens"
