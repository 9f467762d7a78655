"""Real HTTP servers on 127.0.0.1 for the tests: the gateway and the backends it fronts.

Each server runs uvicorn in a thread with its own event loop, so tests talk to it over
real sockets while still reading its counters directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import Counter
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """Serve an ASGI app on a free loopback port from a background thread."""

    def __init__(self, app: Any, port: int | None = None):
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="on", loop="asyncio",
                                http="h11", ws="none", proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Backend:
    """A scriptable upstream: echo, slow, status codes, SSE, health; counts every hit."""

    def __init__(self, name: str):
        self.name = name
        self.hits: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.healthy = True
        self.fail_next = 0  # answer 503 this many times, then recover
        self.fail_status: int | None = None  # answer this status until reset to None
        self.delay = 0.0  # seconds every echo waits before answering
        self.port: int | None = None  # kept across stop/start: a restart on the same port
        self.app = Starlette(routes=[
            Route("/healthz", self.healthz),
            Route("/status/{code:int}", self.status, methods=["GET", "POST"]),
            Route("/slow", self.slow, methods=["GET", "POST"]),
            Route("/sse", self.sse),
            Route("/{path:path}", self.echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ])
        self.server: ThreadedServer | None = None

    def start(self) -> Backend:
        self.server = ThreadedServer(self.app, self.port).start()
        self.port = self.server.port
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def _record(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        info = {
            "backend": self.name, "method": request.method, "path": request.url.path,
            "query": request.url.query, "headers": dict(request.headers),
            "body": body.decode("utf-8", "replace"),
        }
        self.hits[request.url.path] += 1
        self.requests.append(info)
        return info

    async def healthz(self, request: Request) -> Response:
        return Response("ok" if self.healthy else "down", 200 if self.healthy else 503)

    async def echo(self, request: Request) -> Response:
        info = await self._record(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            return Response(b"failing", self.fail_status)
        if self.fail_next > 0:
            self.fail_next -= 1
            return Response(b"try later", 503)
        return Response(orjson.dumps(info), media_type="application/json",
                        headers={"X-Backend": self.name})

    async def status(self, request: Request) -> Response:
        await self._record(request)
        return Response(b"status", request.path_params["code"])

    async def slow(self, request: Request) -> Response:
        info = await self._record(request)
        await asyncio.sleep(float(request.query_params.get("delay", "1")))
        return Response(orjson.dumps(info), media_type="application/json")

    async def sse(self, request: Request) -> Response:
        await self._record(request)
        count = int(request.query_params.get("n", "5"))
        gap = float(request.query_params.get("gap", "0.3"))

        async def events() -> Any:
            for i in range(count):
                yield f"data: {i} {time.monotonic()}\n\n".encode()
                await asyncio.sleep(gap)

        return StreamingResponse(events(), media_type="text/event-stream")


class DroppingServer:
    """Accepts a connection, reads the request head, and closes without answering."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.hits += 1
            with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await reader.readuntil(b"\r\n\r\n")
            writer.transport.abort()

        async def main() -> None:
            self._stop = asyncio.Event()
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self._ready.set()
            await self._stop.wait()
            server.close()
            await server.wait_closed()

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self) -> DroppingServer:
        self.thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=5)
