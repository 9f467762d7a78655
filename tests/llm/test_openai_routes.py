"""OpenAI-compatible routes end to end: a real gateway in front of two real
OpenAI-compatible servers (bench/fake_openai.py) on loopback."""

from __future__ import annotations

import time

import httpx
import orjson

from tests.llm.conftest import PROVIDER_KEY, bearer

CHAT = {"messages": [{"role": "user", "content": "one two three four"}], "max_tokens": 5}


def test_chat_maps_the_model_and_passes_usage(llm_gateway, providers):
    vllm, openai = providers
    gw, keys = llm_gateway()
    r = gw.client.post("/v1/chat/completions", headers=bearer(keys["acme"]),
                       json={"model": "llama-3-8b", **CHAT})
    assert r.status_code == 200, r.text
    assert r.json()["usage"] == {"prompt_tokens": 4, "completion_tokens": 5,
                                 "total_tokens": 9}
    sent = vllm.fake.requests[-1]
    assert sent["body"]["model"] == "meta-llama/Meta-Llama-3-8B"  # as the group knows it
    assert sent["body"]["messages"] == CHAT["messages"]
    assert "authorization" not in sent["headers"]  # the client's key is never forwarded
    # The provider's own x-ratelimit-* headers describe the gateway's account: dropped.
    assert "x-ratelimit-remaining-tokens" not in r.headers
    assert r.headers["ratelimit-limit"] == "1000"  # the tenant's own limits instead
    # Served by the hosted provider: its credential from the environment.
    r = gw.client.post("/v1/chat/completions", headers=bearer(keys["acme"]),
                       json={"model": "gpt-4o-mini", **CHAT})
    assert r.status_code == 200 and r.headers["x-served-by"] == "openai"
    assert openai.fake.requests[-1]["headers"]["authorization"] == "Bearer " + PROVIDER_KEY
    assert openai.fake.requests[-1]["body"]["model"] == "gpt-4o-mini"


def test_stream_is_passed_through_unbuffered_with_usage_asked_for(llm_gateway, providers):
    vllm, _ = providers
    vllm.fake.gap = 0.2
    gw, keys = llm_gateway()
    started = time.monotonic()
    arrivals: list[float] = []
    events: list[bytes] = []
    with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=bearer(keys["acme"]),
                      json={"model": "llama-3-8b", "stream": True, **CHAT},
                      timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line:
                arrivals.append(time.monotonic() - started)
                events.append(line.encode())
    # Five tokens 0.2 s apart: the first arrives long before the last was generated.
    assert len(events) == 7  # 5 tokens, the usage chunk, [DONE]
    assert arrivals[0] < arrivals[4] - 0.5
    body = vllm.fake.requests[-1]["body"]
    assert body["stream_options"] == {"include_usage": True}  # injected by the route
    usage_chunk = orjson.loads(events[5].removeprefix(b"data: "))
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 5
    assert events[6] == b"data: [DONE]"


def test_models_allowlist_and_bad_requests_are_problems(llm_gateway):
    gw, keys = llm_gateway()
    small = bearer(keys["small"])
    cases = [
        ({"model": "gpt-4o-mini", **CHAT}, 403, "may not use model 'gpt-4o-mini'"),
        ({"model": "no-such-model", **CHAT}, 404, "no model 'no-such-model'"),
        ({"messages": []}, 400, "names no model"),
    ]
    for body, status, detail in cases:
        r = gw.client.post("/v1/chat/completions", headers=small, json=body)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert detail in r.json()["detail"]
    r = gw.client.post("/v1/chat/completions", headers=small, content=b"[1, 2")
    assert r.status_code == 400 and "not a JSON object" in r.json()["detail"]
    r = gw.client.post("/v1/chat/completions", json={"model": "llama-3-8b", **CHAT})
    assert r.status_code == 401  # credentials first, as on every route


def test_v1_models_lists_what_the_tenant_may_use(llm_gateway):
    gw, keys = llm_gateway()
    listed = gw.client.get("/v1/models", headers=bearer(keys["small"])).json()
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["llama-3-8b", "e5"]
    everything = gw.client.get("/v1/models", headers=bearer(keys["acme"])).json()
    assert [m["id"] for m in everything["data"]] == ["llama-3-8b", "gpt-4o-mini", "e5"]
    assert gw.client.get("/v1/models").status_code == 401
    one = gw.client.get("/v1/models/llama-3-8b", headers=bearer(keys["small"]))
    assert one.json() == {"id": "llama-3-8b", "object": "model", "created": 0,
                          "owned_by": "gateway"}
    hidden = gw.client.get("/v1/models/gpt-4o-mini", headers=bearer(keys["small"]))
    assert hidden.status_code == 404  # not one it may use: as if it did not exist
    assert hidden.headers["content-type"] == "application/problem+json"


def test_falls_back_across_providers_and_parks_a_429_for_its_retry_after(llm_gateway,
                                                                          providers):
    vllm, openai = providers
    gw, keys = llm_gateway()
    vllm.fake.fail_next = [(429, {"Retry-After": "1"})]
    r = gw.client.post("/v1/chat/completions", headers=bearer(keys["acme"]),
                       json={"model": "llama-3-8b", **CHAT})
    assert r.status_code == 200 and r.headers["x-served-by"] == "openai"
    assert openai.fake.requests[-1]["body"]["model"] == "gpt-4o-mini"  # its own name
    # Within the Retry-After, the parked provider is not asked at all.
    hits = vllm.fake.hits["/v1/chat/completions"]
    r = gw.client.post("/v1/chat/completions", headers=bearer(keys["acme"]),
                       json={"model": "llama-3-8b", **CHAT})
    assert r.headers["x-served-by"] == "openai"
    assert vllm.fake.hits["/v1/chat/completions"] == hits
    time.sleep(1.1)  # after it, it is asked again
    r = gw.client.post("/v1/chat/completions", headers=bearer(keys["acme"]),
                       json={"model": "llama-3-8b", **CHAT})
    assert r.headers["x-served-by"] == "vllm"
    # A 5xx falls back too (a POST: nothing was generated, so nothing is lost).
    vllm.fake.fail_next = [(503, {})]
    r = gw.client.post("/v1/chat/completions", headers=bearer(keys["acme"]),
                       json={"model": "llama-3-8b", **CHAT})
    assert r.status_code == 200 and r.headers["x-served-by"] == "openai"
    # Every provider of the model refusing: the client gets a 429 with Retry-After.
    openai.fake.fail_next = [(429, {"Retry-After": "7"})]
    r = gw.client.post("/v1/chat/completions", headers=bearer(keys["acme"]),
                       json={"model": "gpt-4o-mini", **CHAT})
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.headers["content-type"] == "application/problem+json"


def test_completions_and_embeddings_pass_through(llm_gateway, providers):
    vllm, _ = providers
    gw, keys = llm_gateway()
    r = gw.client.post("/v1/completions", headers=bearer(keys["small"]),
                       json={"model": "llama-3-8b", "prompt": "say hi", "max_tokens": 3})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "w0 w1 w2"
    r = gw.client.post("/v1/embeddings", headers=bearer(keys["small"]),
                       json={"model": "e5", "input": ["a b", "c"]})
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    assert vllm.fake.requests[-1]["body"]["model"] == "intfloat/e5-small"
    assert r.json()["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
