"""Usage as answers report it: found however the stream is cut into chunks."""

from __future__ import annotations

import asyncio

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.runtime import CompiledModel
from gateway.context import LlmCall
from gateway.llm_usage import metered, take_json_usage

MODEL = CompiledModel("m", (), 1e-6, 2e-6, "gateway")


def sse(prompt: int, completion: int, tokens: int = 3) -> bytes:
    events = [b"data: " + orjson.dumps({"choices": [{"delta": {"content": f"w{i}"}}],
                                        "usage": None}) for i in range(tokens)]
    events.append(b"data: " + orjson.dumps({"choices": [], "usage": {
        "prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion}}))
    events.append(b"data: [DONE]")
    return b"\n\n".join(events) + b"\n\n"


async def _drain(chunks: list[bytes], call: LlmCall, is_sse: bool) -> bytes:
    async def source():
        for c in chunks:
            yield c
    return b"".join([c async for c in metered(source(), call, is_sse)])


@given(st.lists(st.integers(min_value=1, max_value=400), max_size=12),
       st.integers(0, 10**6), st.integers(0, 10**6))
def test_sse_usage_found_whatever_the_chunking(cuts, prompt, completion):
    body = sse(prompt, completion)
    chunks, pos = [], 0
    for n in cuts:
        chunks.append(body[pos:pos + n])
        pos += n
    chunks.append(body[pos:])
    call = LlmCall(MODEL, True, 0)
    assert asyncio.run(_drain([c for c in chunks if c], call, True)) == body  # unchanged
    assert (call.reported, call.prompt_tokens, call.completion_tokens) == (
        True, prompt, completion)
    assert call.spend == prompt * 1e-6 + completion * 2e-6


def test_the_last_usage_wins_and_a_stream_without_usage_reports_none():
    cumulative = b"".join(
        b"data: " + orjson.dumps({"choices": [], "usage": {"prompt_tokens": 4,
                                                          "completion_tokens": i}}) + b"\n\n"
        for i in range(1, 6))  # vLLM's continuous usage stats
    call = LlmCall(MODEL, True, 0)
    asyncio.run(_drain([cumulative], call, True))
    assert (call.prompt_tokens, call.completion_tokens) == (4, 5)
    call = LlmCall(MODEL, True, 0)
    asyncio.run(_drain([b'data: {"choices": []}\n\n', b"data: [DONE]\n\n"], call, True))
    assert not call.reported


def test_json_usage_embeddings_and_large_streamed_json():
    call = LlmCall(MODEL, False, 0)
    take_json_usage(b'{"data": [], "usage": {"prompt_tokens": 7, "total_tokens": 7}}', call)
    assert (call.reported, call.prompt_tokens, call.completion_tokens) == (True, 7, 0)
    big = orjson.dumps({"data": [{"embedding": [0.1] * 50_000}],
                        "usage": {"prompt_tokens": 11, "total_tokens": 11}})
    call = LlmCall(MODEL, False, 0)
    asyncio.run(_drain([big[i:i + 8192] for i in range(0, len(big), 8192)], call, False))
    assert (call.reported, call.prompt_tokens) == (True, 11)
    call = LlmCall(MODEL, False, 0)
    take_json_usage(b'{"usage": "not an object"}', call)
    assert not call.reported
