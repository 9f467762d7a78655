"""Token usage as OpenAI-compatible answers report it: a JSON body's `usage`, or the
`usage` of the last server-sent event that carries one (the final chunk, when the
request asked for `stream_options.include_usage`; vLLM's continuous usage stats put
one, cumulative, in every chunk: the last one wins either way).

    take_json_usage(body, call)            a whole answer
    metered(stream, call, sse) -> stream   a streamed one, read as it passes

A streamed answer is never held back: each chunk is passed on first and looked at after
(the client's first byte waits for nothing); a chunk is searched for `"usage"` at C
speed and parsed only when it holds one. What was found is written to the call at
once, so a stream the client cuts short still counts what it reported before.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.context import LlmCall

USAGE_MARK = b'"usage"'
MAX_LINE = 1024 * 1024  # an SSE line longer than this is not searched for usage
TAIL = 64 * 1024  # bytes of a streamed JSON answer searched for its usage, at the end
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*(\{[^{}]*\})')


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def take_usage(usage: Any, call: LlmCall) -> bool:
    """Set the call's counts from a `usage` object; False when it is not one."""
    if not isinstance(usage, dict):
        return False
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    total = _count(usage.get("total_tokens"))
    if prompt is None and total is None:
        return False
    prompt = prompt if prompt is not None else 0
    if completion is None:  # embeddings report prompt and total only
        completion = max(0, (total or prompt) - prompt)
    call.prompt_tokens, call.completion_tokens, call.reported = prompt, completion, True
    return True


def take_json_usage(body: bytes, call: LlmCall) -> None:
    if USAGE_MARK not in body:
        return
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if isinstance(answer, dict):
        take_usage(answer.get("usage"), call)


class SseUsageScanner:
    """Finds `usage` in the `data:` lines of an event stream, chunk by chunk."""

    __slots__ = ("call", "tail")

    def __init__(self, call: LlmCall):
        self.call = call
        self.tail = b""  # the last, incomplete line

    def feed(self, chunk: bytes) -> None:
        data = self.tail + chunk if self.tail else chunk
        end = data.rfind(b"\n")
        if end < 0:
            self.tail = data if len(data) <= MAX_LINE else b""
            return
        self.tail = data[end + 1:]
        if USAGE_MARK in data:  # the tail is searched again with the next chunk
            self._lines(data[:end])

    def finish(self) -> None:
        if self.tail and USAGE_MARK in self.tail:
            self._lines(self.tail)
        self.tail = b""

    def _lines(self, block: bytes) -> None:
        for line in block.split(b"\n"):
            if line.startswith(b"data:") and USAGE_MARK in line:
                try:
                    event = orjson.loads(line[5:])
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict):
                    take_usage(event.get("usage"), self.call)


async def metered(stream: AsyncIterator[bytes], call: LlmCall, sse: bool
                  ) -> AsyncIterator[bytes]:
    """`stream`, unchanged and undelayed, with its usage noted on `call`."""
    if sse:
        scanner = SseUsageScanner(call)
        async for chunk in stream:
            yield chunk
            # Most chunks are whole events without usage: one byte search, no call.
            if scanner.tail or USAGE_MARK in chunk or not chunk.endswith(b"\n"):
                scanner.feed(chunk)
        scanner.finish()
        return
    tail = b""  # a large JSON answer (embeddings): its usage comes last
    async for chunk in stream:
        yield chunk
        tail = (tail + chunk)[-TAIL:]
    found = _USAGE_OBJECT.findall(tail)
    if found:
        with contextlib.suppress(orjson.JSONDecodeError):
            take_usage(orjson.loads(found[-1]), call)
