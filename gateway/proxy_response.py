"""The answer the pipeline passes around: upstream answers, cache hits, replays."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class ProxyResponse:
    """Status and headers, then either a whole `body` or a `stream` of chunks (never both).

    A streamed answer (SSE, chunked, large) is never buffered: response hooks that need
    the body (the cache) must skip answers whose `body` is None.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    # Returns the upstream connection to the pool; called once the answer is sent or dropped.
    release: Callable[[], Awaitable[None]] | None = None
    source: str = "upstream"  # "upstream" | "cache" | "replay": for logs and metrics
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None
