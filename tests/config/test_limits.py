"""The one precedence rule: tenant override > tier > `default` tier; compiled at load."""

from __future__ import annotations

from gateway.config import load_config
from gateway.config.limits import UNLIMITED, compile_limits, effective_limits
from gateway.config.models import Limits, Tenant, Tier


def amounts(items):
    return [(i.amount, i.get_expiry()) for i in items]


def test_precedence_field_by_field():
    default = Tier(rate="1/second", max_in_flight=1, routes={"r": "9/hour"})
    tier = Tier(rate="10/minute; 100/day")
    tenant = Tenant(tier="t", overrides=Limits(max_in_flight=5))
    e = effective_limits(tenant, tier, default, "r", cost=3)
    assert amounts(e.rate) == [(10, 60), (100, 86400)]  # tier beats default
    assert e.max_in_flight == 5  # override beats tier (which left it unset) and default
    assert amounts(e.route_rate) == [(9, 3600)]  # only the default tier sets it
    assert e.cost == 3 and e.policy_header == b"10;w=60, 100;w=86400, 9;w=3600"
    override = Tenant(overrides=Limits(rate="2/minute", routes={"r": "1/minute"}))
    e = effective_limits(override, tier, default, "r", cost=1)
    assert amounts(e.rate) == [(2, 60)] and amounts(e.route_rate) == [(1, 60)]
    assert effective_limits(None, None, None, "r", 1).unlimited


def test_table_resolves_known_unknown_and_anonymous(tmp_path):
    tiers = {"pro": Tier(rate="5/minute"), "default": Tier(rate="1/minute")}
    tenants = {"acme": Tenant(tier="pro"), "free": Tenant()}
    table = compile_limits(tiers, tenants, {"r": 1, "s": 2})
    assert amounts(table.lookup("acme", "r").rate) == [(5, 60)]
    assert table.lookup("acme", "s").cost == 2
    assert amounts(table.lookup("free", "r").rate) == [(1, 60)]  # no tier: default
    assert amounts(table.lookup("nobody", "r").rate) == [(1, 60)]  # unknown: default
    assert table.lookup(None, "r") is UNLIMITED  # no principal: not limited
    assert compile_limits({}, {"acme": Tenant()}, {"r": 1}).lookup("acme", "r").unlimited


def test_load_config_compiles_limits(tmp_path):
    (tmp_path / "routes.yaml").write_text(
        "upstreams: {m: {targets: [{url: 'http://127.0.0.1:1'}]}}\n"
        "routes: [{name: r, match: {prefix: /}, upstream: m, cost: 4}]\n")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "tiers.yaml").write_text("tiers: {pro: {rate: '7/minute', max_in_flight: 2}}\n")
    (policies / "tenants.yaml").write_text("tenants: {acme: {tier: pro}}\n")
    e = load_config(tmp_path / "routes.yaml", policies).limits.lookup("acme", "r")
    assert amounts(e.rate) == [(7, 60)] and e.max_in_flight == 2 and e.cost == 4
