"""What reading LLM usage costs, and whether the counting is exact.

    python bench/bench_llm_usage.py [--streams 200] [--calls 1000] [--tokens 50]

1. First byte: streamed chat completions through `gateway serve`, alternating an llm
   route (usage read from every chunk, stream_options injected) and a plain prefix
   route to the same upstream (bytes copied only); time to the first event and to the
   end, medians and p90 over `--streams` of each.
2. Per chunk, in process: the usage scanner over a stream of 500 events against the
   bare copy loop, CPU microseconds per chunk.
3. Exactness: `--calls` mixed calls (JSON and streamed chat, completions, embeddings) on
   the llm routes; the sum of tokens the gateway counted (gateway_llm_tokens_total) must
   equal the sum of usage the upstream reported.

The OpenAI-compatible upstream is bench/fake_openai.py, served from a thread of this
process (so its `reported` sums are read directly); the gateway is its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_openai import FakeOpenAI
from harness import free_port, gateway, stop

ROUTES = """\
version: 1
upstreams:
  fake: {{targets: [{{url: "http://127.0.0.1:{port}"}}]}}
models:
  m: {{serve: [{{upstream: fake, model: upstream-m}}], price: {{prompt: 1, completion: 2}}}}
routes:
  - {{name: chat, match: {{path: /v1/chat/completions, methods: [POST]}}, public: true,
     llm: {{api: chat}}}}
  - {{name: completions, match: {{path: /v1/completions, methods: [POST]}}, public: true,
     llm: {{api: completions}}}}
  - {{name: embeddings, match: {{path: /v1/embeddings, methods: [POST]}}, public: true,
     llm: {{api: embeddings}}}}
  - {{name: plain, match: {{prefix: /plain}}, upstream: fake, rewrite: /v1/chat/completions,
     public: true}}
"""


def serve_fake(fake: FakeOpenAI) -> int:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return port


def one_stream(client: httpx.Client, url: str, tokens: int) -> tuple[float, float]:
    body = {"model": "m", "stream": True, "max_tokens": tokens,
            "messages": [{"role": "user", "content": "hello there"}]}
    if url.endswith("/plain"):
        body["stream_options"] = {"include_usage": True}  # the same bytes come back
    started = time.perf_counter()
    first = 0.0
    with client.stream("POST", url, json=body) as r:
        for chunk in r.iter_raw():
            if chunk and not first:
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def first_bytes(base: str, streams: int, tokens: int) -> None:
    times: dict[str, list[tuple[float, float]]] = {"llm": [], "plain": []}
    with httpx.Client(timeout=30) as client:
        for _ in range(5):  # warm up both paths
            one_stream(client, base + "/v1/chat/completions", tokens)
            one_stream(client, base + "/plain", tokens)
        for i in range(streams * 2):
            kind = "llm" if i % 2 == 0 else "plain"
            path = "/v1/chat/completions" if kind == "llm" else "/plain"
            times[kind].append(one_stream(client, base + path, tokens))
    print(f"1. streamed answers, {tokens} events each, {streams} per route, alternating")
    print("   route        first byte p50 / p90 (ms)    whole stream p50 / p90 (ms)")
    for kind, rows in times.items():
        first = [f * 1000 for f, _ in rows]
        whole = [w * 1000 for _, w in rows]
        print(f"   {kind:<12} {statistics.median(first):7.2f} / {pct(first, 0.9):7.2f}"
              f"              {statistics.median(whole):7.2f} / {pct(whole, 0.9):7.2f}")


def per_chunk(tokens: int = 500, rounds: int = 200) -> None:
    from gateway.config.runtime import CompiledModel
    from gateway.context import LlmCall
    from gateway.llm_usage import metered

    events = [b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk",
                                        "choices": [{"index": 0, "delta": {"content": "w "}}]})
              + b"\n\n" for _ in range(tokens)]
    events.append(b"data: " + orjson.dumps({"choices": [], "usage": {
        "prompt_tokens": 2, "completion_tokens": tokens}}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    model = CompiledModel("m", (), 0.0, 0.0, "gateway")

    async def source():  # type: ignore[no-untyped-def]
        for e in events:
            yield e

    async def bare() -> None:
        async for _ in source():
            pass

    async def scanned() -> None:
        call = LlmCall(model, True, 0)
        async for _ in metered(source(), call, True):
            pass
        assert call.completion_tokens == tokens

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        loop = asyncio.new_event_loop()
        start = time.process_time()  # CPU: other processes' load does not count
        for _ in range(rounds):
            loop.run_until_complete(fn())
        loop.close()
        return (time.process_time() - start) / (rounds * len(events)) * 1e6

    rows = {"bare copy": [], "usage scanner": []}
    for _ in range(3):
        rows["bare copy"].append(timed(bare))
        rows["usage scanner"].append(timed(scanned))
    print(f"2. per chunk, in process, CPU ({len(events)} events x {rounds}, 3 rounds "
          "alternating)")
    for name, values in rows.items():
        print(f"   {name:<14} {statistics.median(values):.2f} us per chunk")


def counted_tokens(metrics: str) -> dict[str, float]:
    counted = {"prompt": 0.0, "completion": 0.0}
    for line in metrics.splitlines():
        m = re.match(r'gateway_llm_tokens_total\{.*kind="(\w+)".*\} (\S+)', line)
        if m:
            counted[m.group(1)] += float(m.group(2))
    return counted


def exactness(base: str, fake: FakeOpenAI, calls: int) -> bool:
    rng = random.Random(1)
    before = dict(fake.reported)
    with httpx.Client(timeout=30) as client:
        already = counted_tokens(client.get(base + "/metrics").text)
        for _ in range(calls):
            kind = rng.choice(["chat", "chat-stream", "completions", "completions-stream",
                               "embeddings"])
            words = " ".join(["w"] * rng.randint(1, 200))
            if kind.startswith("embeddings"):
                r = client.post(base + "/v1/embeddings",
                                json={"model": "m", "input": [words, "x y"]})
                assert r.status_code == 200, r.text
                continue
            stream = kind.endswith("-stream")
            path = "/v1/chat/completions" if kind.startswith("chat") else "/v1/completions"
            body = {"model": "m", "max_tokens": rng.randint(1, 300), "stream": stream}
            body.update({"messages": [{"role": "user", "content": words}]}
                        if kind.startswith("chat") else {"prompt": words})
            if stream:
                with client.stream("POST", base + path, json=body) as r:
                    assert r.status_code == 200
                    r.read()
            else:
                assert client.post(base + path, json=body).status_code == 200
        time.sleep(1.5)  # the access line of the last call is written after its answer
        total = counted_tokens(client.get(base + "/metrics").text)
    counted = {k: total[k] - already[k] for k in total}
    upstream = {k: fake.reported[k + "_tokens"] - before.get(k + "_tokens", 0)
                for k in ("prompt", "completion")}
    ok = all(counted[k] == upstream[k] for k in counted)
    print(f"3. exactness over {calls} mixed calls: upstream reported prompt "
          f"{upstream['prompt']}, completion {upstream['completion']}; gateway counted "
          f"prompt {counted['prompt']:.0f}, completion {counted['completion']:.0f}: "
          f"{'equal' if ok else 'DIFFERENT'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=50)
    args = parser.parse_args()
    fake = FakeOpenAI("bench")
    port = serve_fake(fake)
    proc, gw_port, _ = gateway(ROUTES.format(port=port),
                               env={"GATEWAY_ACCESS_LOG": "false"})
    base = f"http://127.0.0.1:{gw_port}"
    try:
        first_bytes(base, args.streams, args.tokens)
        per_chunk()
        ok = exactness(base, fake, args.calls)
    finally:
        stop(proc)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
