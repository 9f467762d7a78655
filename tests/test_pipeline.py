"""The pipeline's order rules and the per-route plan (pure: no server needed)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from gateway.pipeline import Policy, PolicyPlan, run_pipeline
from gateway.proxy_response import ProxyResponse

calls: list[str] = []


class Recorder(Policy):
    def __init__(self, name: str, answer: ProxyResponse | None = None,
                 only: str | None = None):
        self.name, self.answer, self.only = name, answer, only

    def applies_to(self, route: Any) -> bool:
        return self.only is None or route.kind == self.only

    async def on_request(self, ctx: Any) -> ProxyResponse | None:
        calls.append(f"{self.name}.request")
        return self.answer


class Responder(Recorder):
    async def on_response(self, ctx: Any, response: ProxyResponse) -> None:
        calls.append(f"{self.name}.response")


def run(policies: list[Policy], upstream: ProxyResponse) -> ProxyResponse:
    calls.clear()

    async def call_upstream(ctx: Any) -> ProxyResponse:
        calls.append("upstream")
        return upstream

    return asyncio.run(run_pipeline(policies, SimpleNamespace(), call_upstream))


def test_response_hooks_run_in_reverse_only_where_defined_and_requested() -> None:
    ok = ProxyResponse(200, [], body=b"up")
    assert not Recorder.has_response_hook and Responder.has_response_hook
    assert run([Responder("a"), Recorder("b"), Responder("c")], ok) is ok
    assert calls == ["a.request", "b.request", "c.request", "upstream",
                     "c.response", "a.response"]
    hit = ProxyResponse(200, [], body=b"cached")
    assert run([Responder("a"), Responder("b", answer=hit), Responder("c")], ok) is hit
    assert calls == ["a.request", "b.request", "b.response", "a.response"]


def test_plan_keeps_the_policies_that_apply_and_follows_a_new_config() -> None:
    auth, cache, log = Recorder("auth", only="private"), Recorder("cache", only="cached"), \
        Recorder("log")
    plan = PolicyPlan([auth, cache, log])
    public, private = SimpleNamespace(kind="public"), SimpleNamespace(kind="private")
    config = object()
    assert plan.for_route(config, public) == [log]
    assert plan.for_route(config, private) == [auth, log]
    assert plan.for_route(config, private) is plan.for_route(config, private)  # decided once
    private.kind = "cached"  # only a new config generation re-decides
    assert plan.for_route(config, private) == [auth, log]
    assert plan.for_route(object(), private) == [cache, log]
