"""Config loading: valid files compile; every refusal names file, line and field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError, MethodNotAllowed, NotFound

GOOD = """\
version: 1
upstreams:
  main:
    targets:
      - url: http://127.0.0.1:9001
        weight: 90
      - url: http://127.0.0.1:9002
        weight: 10
  backup:
    targets: [{url: "http://127.0.0.1:9003"}]
routes:
  - name: exact
    match: {path: /v1/sentiment, methods: [POST]}
    upstream: main
    fallbacks: [backup]
    rewrite: /predict
  - name: templ
    match: {path: "/v1/models/{model}/predict"}
    upstream: main
    rewrite: "/models/{model}"
  - name: pref
    match: {prefix: /v1/}
    upstream: backup
"""


def write(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_file_compiles_matchers_and_weights(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    route, params = config.router.match("POST", "/v1/sentiment")
    assert route.name == "exact" and [g.name for g in route.groups] == ["main", "backup"]
    assert route.upstream_path("/v1/sentiment", params) == "/predict"
    assert config.groups["main"].cumulative == (90, 100)
    route, params = config.router.match("GET", "/v1/models/vader/predict")
    assert route.name == "templ" and route.upstream_path("", params) == "/models/vader"
    route, params = config.router.match("GET", "/v1/other/thing")
    assert route.name == "pref" and route.upstream_path("/v1/other/thing", {}) == "/v1/other/thing"
    # An exact path wins over the prefix; a method mismatch on an exact path falls through
    # to the prefix route that allows it.
    assert config.router.match("GET", "/v1/sentiment")[0].name == "pref"
    with pytest.raises(NotFound):
        config.router.match("GET", "/v2/x")


def test_method_not_allowed_lists_methods(tmp_path):
    text = GOOD.replace("match: {prefix: /v1/}", "match: {prefix: /v1/, methods: [GET]}")
    config = load_config(write(tmp_path, text))
    with pytest.raises(MethodNotAllowed) as exc:
        config.router.match("DELETE", "/v1/sentiment")
    assert exc.value.headers["Allow"] == "GET, POST"


def test_prefix_matches_on_segment_boundary(tmp_path):
    text = GOOD.replace("match: {prefix: /v1/}", "match: {prefix: /api}")
    config = load_config(write(tmp_path, text))
    assert config.router.match("GET", "/api")[0].name == "pref"
    assert config.router.match("GET", "/api/x")[0].name == "pref"
    with pytest.raises(NotFound):
        config.router.match("GET", "/apix")


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        ("        weight: 10", "        weight: ten", 8, "upstreams.main.targets[1].weight",
         "integer"),
        ("    rewrite: /predict", "    rewrite: /predict\n    retires: 3", 17,
         "routes[0].retires", "unknown field"),
        ("    upstream: backup\n", "    upstream: nowhere\n", 23, "routes[2].upstream",
         "unknown upstream group 'nowhere'"),
        ("  - name: templ", "  - name: exact", 17, "routes[1].name", "duplicate route name"),
        ("      - url: http://127.0.0.1:9002", "      - url: not a url", 7,
         "upstreams.main.targets[1].url", "URL"),
        ("match: {prefix: /v1/}", "match: {prefix: /v1/, path: /x}", 22, "routes[2].match",
         "exactly one"),
        ("    targets: [{url:", "    targets: [{url: [", 10, "(syntax)", ""),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, old, new, line, field, message):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    err = exc.value
    assert err.file == str(path)
    assert err.line == line, str(err)
    assert err.field == field, str(err)
    assert message in err.message
    assert str(err).startswith(f"{path}:{line}: {field}: ")


def test_policies_references_checked(tmp_path):
    routes = write(tmp_path, GOOD)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "tiers.yaml").write_text("tiers:\n  free:\n    rate: 10/minute\n")
    (policies / "tenants.yaml").write_text(
        "tenants:\n  acme:\n    tier: free\n    routes: [exact]\n  beta:\n    tier: gold\n")
    with pytest.raises(ConfigError) as exc:
        load_config(routes, policies)
    assert exc.value.line == 6 and exc.value.field == "tenants.beta.tier"
    (policies / "tiers.yaml").write_text("tiers:\n  free:\n    rate: ten a minute\n")
    with pytest.raises(ConfigError) as exc:
        load_config(routes, policies)
    assert exc.value.file.endswith("tiers.yaml") and exc.value.line == 3
    assert "limits notation" in exc.value.message


def test_shipped_config_is_valid():
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "routes.yaml", root / "policies")
    assert {"sentiment", "classify"} <= set(config.routes)
    assert "demo" in config.tenants


def test_check_command_exit_codes(tmp_path):
    good = write(tmp_path, GOOD)
    ok = subprocess.run([sys.executable, "-m", "gateway", "check", str(good)],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and "3 routes" in ok.stdout
    bad = write(tmp_path, GOOD.replace("weight: 10", "weight: -1"), "bad.yaml")
    res = subprocess.run([sys.executable, "-m", "gateway", "check", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert f"{bad}:8: upstreams.main.targets[1].weight:" in res.stderr
    assert "Traceback" not in res.stderr


def test_check_prints_every_problem_of_every_file(tmp_path, capsys):
    from gateway.cli import main

    text = (GOOD.replace("weight: 10", "weight: -1")
            .replace("rewrite: /predict", "rewrite: predict")
            .replace("    upstream: backup\n", "    upstream: backup\n    retires: 3\n"))
    routes = write(tmp_path, text)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "tiers.yaml").write_text("tiers:\n  free:\n    rate: ten a minute\n")
    (policies / "tenants.yaml").write_text("tenants:\n  acme:\n    tier: gold\n")
    assert main(["check", str(routes), "--policies-dir", str(policies)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[:-1] == [
        f"{routes}:8: upstreams.main.targets[1].weight: "
        "Input should be greater than or equal to 0",
        f"{routes}:16: routes[0].rewrite: rewrite paths start with '/'",
        f"{routes}:24: routes[2].retires: unknown field",
        f"{policies}/tiers.yaml:3: tiers.free.rate: "
        "'ten a minute' is not in limits notation, e.g. '100/minute; 5000/day'",
    ]  # tenants.yaml's tier is not checked against a tiers.yaml that did not load
    assert lines[-1] == "error: 4 problems; the config was not loaded"


def test_cross_references_are_all_reported_too(tmp_path):
    text = GOOD.replace("upstream: backup\n", "upstream: nowhere\n").replace(
        "fallbacks: [backup]", "fallbacks: [gone]")
    routes = write(tmp_path, text)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "tenants.yaml").write_text("tenants:\n  acme:\n    routes: [exact, nope]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(routes, policies)
    assert [(p.line, p.field) for p in exc.value.problems] == [
        (15, "routes[0].fallbacks[0]"), (23, "routes[2].upstream"),
        (3, "tenants.acme.routes[1]")]
    assert str(exc.value).endswith("(and 2 more problems)")


def test_environment_variables_in_values(tmp_path, monkeypatch):
    text = GOOD.replace("http://127.0.0.1:9003", "http://127.0.0.1:${BACKUP_PORT:-9003}")
    monkeypatch.delenv("BACKUP_PORT", raising=False)
    path = write(tmp_path, text)
    assert load_config(path).groups["backup"].targets[0].url == "http://127.0.0.1:9003"
    monkeypatch.setenv("BACKUP_PORT", "9103")
    assert load_config(path).groups["backup"].targets[0].url == "http://127.0.0.1:9103"
    write(tmp_path, GOOD.replace("http://127.0.0.1:9003", "http://${BACKUP_HOST}:9003"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert (exc.value.line, exc.value.field) == (10, "upstreams.backup.targets[0].url")
    assert "environment variable BACKUP_HOST is not set" in exc.value.message


def test_an_empty_file_is_refused_not_read_as_no_tenants(tmp_path):
    # A save caught between truncation and write must not disable every tenant.
    routes = write(tmp_path, GOOD)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "tiers.yaml").write_text("tiers:\n  free:\n    rate: 10/minute\n")
    (policies / "tenants.yaml").write_text("tenants:\n  acme:\n    tier: free\n")
    assert "acme" in load_config(routes, policies).tenants
    for name in ("tenants.yaml", "tiers.yaml"):
        original = (policies / name).read_text()
        (policies / name).write_text("  \n")
        with pytest.raises(ConfigError) as exc:
            load_config(routes, policies)
        assert exc.value.file.endswith(name) and "empty" in exc.value.message
        (policies / name).write_text(original)
    (policies / "tenants.yaml").write_text("tenants: {}\n")
    assert load_config(routes, policies).tenants == {}


def test_a_cost_above_a_whole_limit_is_refused(tmp_path):
    # Every request of that route would be a 429 that no wait could cure.
    routes = write(tmp_path, GOOD.replace("    rewrite: /predict\n",
                                          "    rewrite: /predict\n    cost: 100\n"))
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "tiers.yaml").write_text("tiers:\n  free:\n    rate: 60/minute\n")
    (policies / "tenants.yaml").write_text(
        "tenants:\n  acme:\n    tier: free\n  beta:\n    tier: free\n"
        "  other:\n    tier: free\n    routes: [pref]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(routes, policies)
    assert exc.value.field == "routes[0].cost"
    assert exc.value.line == 17 and "60 per 1 minute" in exc.value.message
    assert not exc.value.others  # one problem per route and limit, not per tenant
    # Nobody who could call it is limited below its cost: a disabled tenant, one not
    # allowed the route, and tenants not in tenants.yaml (never admitted) do not count.
    (policies / "tenants.yaml").write_text(
        "tenants:\n  acme:\n    tier: free\n    enabled: false\n"
        "  other:\n    tier: free\n    routes: [pref]\n")
    assert load_config(routes, policies).routes["exact"].cost == 100
    (policies / "tiers.yaml").write_text("tiers:\n  free:\n    rate: 100/minute\n")
    assert load_config(routes, policies).routes["exact"].cost == 100
