"""Steady concurrent load for fault tests: a few clients in a background thread send GETs
round-robin over the replicas and record every answer, while the test breaks things."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Answer:
    at: float  # time.monotonic() when the answer (or the error) came
    url: str  # the replica asked
    status: int  # 0: no HTTP answer at all
    took: float
    backend: str  # the upstream that answered (the test backends' echo says), or ""
    limited: bool  # carried RateLimit headers: the limits were enforced
    problem: bool  # an application/problem+json body
    retry_after: int


class Load:
    """`with Load(urls, path, headers) as load:` sends until the block ends."""

    def __init__(self, urls: Sequence[str], path: str, headers: dict[str, str],
                 workers: int = 6, pause: float = 0.01):
        self.urls, self.path, self.headers = list(urls), path, headers
        self.workers, self.pause = workers, pause
        self.answers: list[Answer] = []
        self.errors: list[str] = []  # a few words on each answer that was not a 200
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.workers * 2)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            await asyncio.gather(*(self._client(client, i) for i in range(self.workers)))

    async def _client(self, client: httpx.AsyncClient, n: int) -> None:
        while not self._stop.is_set():
            url = self.urls[n % len(self.urls)]
            n += 1
            began = time.monotonic()
            try:
                r = await client.get(url + self.path, headers=self.headers)
            except httpx.HTTPError as exc:
                self.errors.append(f"{url}: {exc!r}")
                self.answers.append(Answer(time.monotonic(), url, 0, 0.0, "", False, False, 0))
                continue
            now = time.monotonic()
            kind = r.headers.get("content-type", "")
            backend = r.json().get("backend", "") if kind == "application/json" else ""
            if r.status_code != 200:
                self.errors.append(f"{url}: {r.status_code} {r.text[:200]}")
            self.answers.append(Answer(
                now, url, r.status_code, now - began, backend, "ratelimit-limit" in r.headers,
                kind == "application/problem+json", int(r.headers.get("retry-after", "0"))))
            await asyncio.sleep(self.pause)

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in list(self.answers) if start <= a.at < end]

    def limited_since(self, url: str, since: float) -> bool:
        """Whether `url` answered a 200 with its limits enforced after `since`."""
        return any(a.url == url and a.at >= since and a.status == 200 and a.limited
                   for a in list(self.answers))

    @staticmethod
    def p99(answers: Sequence[Answer]) -> float:
        took = sorted(a.took for a in answers)
        return took[min(len(took) - 1, int(len(took) * 0.99))] if took else 0.0
