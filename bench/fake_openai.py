"""A small OpenAI-compatible server for tests and benchmarks: chat completions,
completions and embeddings (JSON or SSE streamed, with `usage`), `GET /v1/models`, and
scripted failures (429 with Retry-After, 5xx) to drive fallbacks.

    python bench/fake_openai.py PORT [--gap SECONDS]

Counts are deterministic: prompt tokens are the words of the prompt (messages'
contents, `prompt` or `input`), completion tokens are `max_tokens` (default 16), one
word each. Every usage it reports is added to `reported`, so a test can compare the
gateway's count with what the upstream said. Streamed answers send one event per token
`gap` seconds apart, then the usage chunk when `stream_options.include_usage` is set
(as OpenAI does: `choices: []`), then `data: [DONE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

DEFAULT_MAX_TOKENS = 16


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return _words(value.get("content", "")) + _words(value.get("text", ""))
    return 0


class FakeOpenAI:
    """The server's state: what it was asked, what it reported, what it will refuse."""

    def __init__(self, name: str = "fake-openai", gap: float = 0.0):
        self.name = name
        self.gap = gap
        self.requests: list[dict[str, Any]] = []  # body and headers of each call
        self.hits: Counter[str] = Counter()
        self.fail_next: list[tuple[int, dict[str, str]]] = []  # (status, headers) to answer
        self.reported = Counter()  # prompt_tokens, completion_tokens summed over answers
        self.disconnected = 0  # streams whose client went away
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.models),
            Route("/healthz", lambda r: Response("ok")),
        ])

    async def _take(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        body = orjson.loads(await request.body())
        self.requests.append({"path": request.url.path, "body": body,
                              "headers": dict(request.headers)})
        self.hits[request.url.path] += 1
        if self.fail_next:
            status, headers = self.fail_next.pop(0)
            return body, Response(orjson.dumps({"error": {"message": "scripted failure",
                                                          "code": status}}),
                                  status, headers=headers, media_type="application/json")
        return body, None

    def _usage(self, prompt: int, completion: int) -> dict[str, int]:
        self.reported["prompt_tokens"] += prompt
        self.reported["completion_tokens"] += completion
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "total_tokens": prompt + completion}

    async def chat(self, request: Request) -> Response:
        return await self._generate(request, "chat.completion", "messages")

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, "text_completion", "prompt")

    async def _generate(self, request: Request, kind: str, field: str) -> Response:
        body, failed = await self._take(request)
        if failed is not None:
            return failed
        prompt = _words(body.get(field))
        n = int(body.get("max_tokens") or body.get("max_completion_tokens")
                or DEFAULT_MAX_TOKENS)
        model = body.get("model", "")
        chat = kind == "chat.completion"
        if not body.get("stream"):
            text = " ".join(f"w{i}" for i in range(n))
            choice = ({"index": 0, "message": {"role": "assistant", "content": text},
                       "finish_reason": "length"} if chat else
                      {"index": 0, "text": text, "finish_reason": "length"})
            return Response(orjson.dumps({
                "id": "cmpl-1", "object": kind, "created": int(time.time()), "model": model,
                "choices": [choice], "usage": self._usage(prompt, n)}),
                media_type="application/json", headers={"X-Served-By": self.name,
                                                       "x-ratelimit-remaining-tokens": "99"})
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk_kind = "chat.completion.chunk" if chat else "text_completion"

        async def events() -> Any:
            try:
                for i in range(n):
                    choice = ({"index": 0, "delta": {"content": f"w{i} "}} if chat
                              else {"index": 0, "text": f"w{i} "})
                    yield b"data: " + orjson.dumps({
                        "id": "cmpl-1", "object": chunk_kind, "model": model,
                        "choices": [choice]}) + b"\n\n"
                    if self.gap:
                        await asyncio.sleep(self.gap)
                if include_usage:
                    yield b"data: " + orjson.dumps({
                        "id": "cmpl-1", "object": chunk_kind, "model": model, "choices": [],
                        "usage": self._usage(prompt, n)}) + b"\n\n"
                yield b"data: [DONE]\n\n"
            except asyncio.CancelledError:
                self.disconnected += 1
                raise

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"X-Served-By": self.name})

    async def embeddings(self, request: Request) -> Response:
        body, failed = await self._take(request)
        if failed is not None:
            return failed
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i,
                 "embedding": [float(len(str(x))), 0.5, 0.25, 0.125]}
                for i, x in enumerate(items)]
        usage = self._usage(_words(inputs), 0)
        del usage["completion_tokens"]  # as OpenAI: prompt and total only
        return Response(orjson.dumps({"object": "list", "data": data,
                                      "model": body.get("model"), "usage": usage}),
                        media_type="application/json", headers={"X-Served-By": self.name})

    async def models(self, request: Request) -> Response:
        return Response(orjson.dumps({"object": "list", "data": [
            {"id": "fake-model", "object": "model", "created": 0, "owned_by": self.name}]}),
            media_type="application/json")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between tokens")
    args = parser.parse_args()
    uvicorn.run(FakeOpenAI(gap=args.gap).app, host="127.0.0.1", port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
