"""Token accounting and token limits end to end: usage counted from JSON answers and
from the final SSE chunk, limits reserved before the call and settled after it."""

from __future__ import annotations

import random
import re
import time

import httpx
import pytest

from tests.llm.conftest import bearer

TIERS = {"pro": {"rate": "1000/minute", "tokens": "100/hour"}}


def chat(model: str = "llama-3-8b", words: int = 4, max_tokens: int = 5, **kw):
    return {"model": model, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": " ".join(["w"] * words)}], **kw}


def metric(gw, name: str, **labels: str) -> float:
    text = gw.client.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def wait_metric(gw, name: str, value: float, **labels: str) -> float:
    """The metric once it reaches `value`: a request is observed after its answer ends,
    so a scrape right after the answer may come first."""
    deadline = time.monotonic() + 5
    while (found := metric(gw, name, **labels)) < value:
        assert time.monotonic() < deadline, f"{name} {labels}: {found}, not {value}"
        time.sleep(0.05)
    return found


def settled(gw, calls: int) -> None:
    """Wait until `calls` LLM calls have ended: a call is settled in a cleanup after its
    answer's last byte, and counted (metrics) only after its cleanups ran, so the next
    call sees the settlement (on Redis it is a round trip the client need not wait for)."""
    wait_metric(gw, "gateway_llm_calls_total", calls)


def estimate_of(body: dict) -> int:
    """What the gateway reserves: the request's bytes / 4, plus max_tokens."""
    size = len(httpx.Request("POST", "http://x", json=body).content)
    return -(-size // 4) + body["max_tokens"]


def remaining(r: httpx.Response) -> int:
    return int(r.headers["x-ratelimit-remaining-tokens"])


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_reserved_then_settled_to_the_reported_usage(llm_gateway, providers, store, request):
    settings = {}
    if store == "redis":  # the same through charge.lua and settle.lua
        settings["redis_url"] = request.getfixturevalue("redis_server").url
    gw, keys = llm_gateway(tiers=TIERS, **settings)
    acme = bearer(keys["acme"])
    body = chat(max_tokens=5)
    r = gw.client.post("/v1/chat/completions", headers=acme, json=body)
    assert r.status_code == 200
    assert r.headers["x-ratelimit-limit-tokens"] == "100"
    # Reserved: the request's bytes / 4 plus max_tokens; left after the reservation.
    estimate = estimate_of(body)
    assert remaining(r) == 100 - estimate
    # Settled after the answer to what the upstream reported (4 + 5 = 9 tokens): the
    # next call's reservation starts from 91 (gcra refills 1 token per 36 s meanwhile).
    settled(gw, 1)
    r = gw.client.post("/v1/chat/completions", headers=acme, json=body)
    assert remaining(r) == 100 - 9 - estimate
    # A call whose estimate no longer fits is refused before the upstream, not charged.
    hits = sum(p.fake.hits["/v1/chat/completions"] for p in providers)
    settled(gw, 2)
    r = gw.client.post("/v1/chat/completions", headers=acme, json=chat(max_tokens=80))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.headers["content-type"] == "application/problem+json"
    assert "token limit of 100 per 1 hour" in r.json()["detail"]
    assert sum(p.fake.hits["/v1/chat/completions"] for p in providers) == hits
    # A streamed call is settled from its final usage chunk.
    streamed = chat(max_tokens=5, stream=True)
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=acme,
                      json=streamed, timeout=10) as s:
        left_at_reserve = remaining(s)
        s.read()
    settled(gw, 4)  # the 429 was a call too
    r = gw.client.post("/v1/chat/completions", headers=acme, json=body)
    assert remaining(r) == left_at_reserve + estimate_of(streamed) - 9 - estimate


def test_failed_calls_are_refunded_and_other_tenants_count_apart(llm_gateway, providers):
    vllm, openai = providers
    gw, keys = llm_gateway(tiers=TIERS)
    acme = bearer(keys["acme"])
    r = gw.client.post("/v1/chat/completions", headers=acme, json=chat())
    full = remaining(r)
    vllm.fake.fail_next = [(500, {})]
    openai.fake.fail_next = [(500, {})]
    r = gw.client.post("/v1/chat/completions", headers=acme, json=chat())
    assert r.status_code == 502
    # The failed call gave its reservation back: the next one sees what the first left.
    settled(gw, 2)
    r = gw.client.post("/v1/chat/completions", headers=acme, json=chat())
    assert remaining(r) == full - 9
    other = gw.client.post("/v1/chat/completions", headers=bearer(keys["small"]),
                           json=chat())
    assert remaining(other) == full  # its own bucket


@pytest.mark.parametrize("calls", [60])
def test_counted_tokens_equal_the_upstreams_usage(llm_gateway, providers, calls):
    """Exactness, reduced for CI (bench/bench_llm_usage.py runs 1,000 calls)."""
    gw, keys = llm_gateway()
    rng = random.Random(7)
    for i in range(calls):
        tenant = "acme" if i % 3 else "small"
        body = chat(words=rng.randint(1, 40), max_tokens=rng.randint(1, 30),
                    stream=bool(i % 2))
        if i % 5 == 0:
            r = gw.client.post("/v1/embeddings", headers=bearer(keys[tenant]),
                               json={"model": "e5", "input": ["x " * rng.randint(1, 9)]})
        elif body["stream"]:
            with httpx.stream("POST", gw.url + "/v1/chat/completions", timeout=10,
                              headers=bearer(keys[tenant]), json=body) as r:
                r.read()
        else:
            r = gw.client.post("/v1/chat/completions", headers=bearer(keys[tenant]),
                               json=body)
        assert r.status_code == 200
    reported = sum((p.fake.reported for p in providers), start=type(providers[0].fake
                                                                    .reported)())
    wait_metric(gw, "gateway_llm_calls_total", calls)
    assert metric(gw, "gateway_llm_tokens_total", kind="prompt") == reported["prompt_tokens"]
    assert (metric(gw, "gateway_llm_tokens_total", kind="completion")
            == reported["completion_tokens"])
    assert metric(gw, "gateway_llm_calls_total", usage="missing") == 0
    assert metric(gw, "gateway_llm_tokens_total", tenant="small") > 0
    # Spend by the price table: llama-3-8b costs 0.5 / 1.5 per million tokens, e5 nothing.
    prompt = metric(gw, "gateway_llm_tokens_total", model="llama-3-8b", kind="prompt")
    completion = metric(gw, "gateway_llm_tokens_total", model="llama-3-8b",
                        kind="completion")
    assert metric(gw, "gateway_llm_spend_total") == pytest.approx(
        (prompt * 0.5 + completion * 1.5) / 1e6)


def test_budget_refuses_once_the_spend_would_pass_it(llm_gateway, providers):
    # 0.01 per prompt token and 0.02 per completion token (per million: 10,000 / 20,000).
    models = {"pricey": {"serve": [{"upstream": "vllm"}],
                         "price": {"prompt": 10_000, "completion": 20_000}}}
    gw, keys = llm_gateway(tiers={"pro": {"budget": "1/hour"}}, models=models,
                           tenants={"acme": {"tier": "pro"}})
    acme = bearer(keys["acme"])
    spent = 0.0
    while (r := gw.client.post("/v1/chat/completions", headers=acme,
                               json=chat(model="pricey"))).status_code == 200:
        spent += 4 * 0.01 + 5 * 0.02  # what each call reported, priced
        assert spent < 1
    assert r.status_code == 429 and "budget of 1 per 1 hour" in r.json()["detail"]
    # Reserved at the estimate's price (every token at the dearer one), settled to the
    # reported usage: refused only when the next estimate no longer fits what is left.
    estimate = estimate_of(chat(model="pricey")) * 0.02
    assert 1 - spent < estimate
    assert spent > 1 - estimate - 0.14
    calls = round(spent / 0.14)
    wait_metric(gw, "gateway_llm_calls_total", calls)
    assert metric(gw, "gateway_llm_spend_total", tenant="acme") == pytest.approx(spent)
