"""The server protocol of `gateway serve`: header limits and the server's own refusals,
over raw sockets against a real gateway process, in front of a raw upstream that records
every byte it receives (a parsing server would refuse big heads itself and hide a leak)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from tests.conftest import write_routes
from tests.processes import GatewayProcess
from tests.servers import free_port

KIB = 1024


class RecordingUpstream:
    """HTTP/1.1 on loopback that keeps each request's raw head and answers 200."""

    def __init__(self) -> None:
        self.port = free_port()
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []  # of requests received complete
        self.connections: set[asyncio.Task[None]] = set()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                self.bodies.append(await self._body(reader, head))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
                             b"content-type: application/json\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:  # also when stop() cancels a kept-alive connection
            writer.close()
            self.connections.discard(task)

    @staticmethod
    async def _body(reader: asyncio.StreamReader, head: bytes) -> bytes:
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                return await reader.readexactly(int(line.split(b":", 1)[1]))
        if b"transfer-encoding: chunked" not in head.lower():
            return b""
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
        return body

    def start(self) -> RecordingUpstream:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(asyncio.start_server(
            self._handle, "127.0.0.1", self.port, limit=64 * 1024 * 1024), self.loop).result()
        return self

    def stop(self) -> None:
        async def close() -> None:
            # Connections the gateway still keeps alive end here, not in the garbage
            # collector of a later test (an unraisable ResourceWarning there).
            self.server.close()
            for task in list(self.connections):
                task.cancel()
            await asyncio.gather(*self.connections, return_exceptions=True)
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def serve(tmp_path: Path, upstream: RecordingUpstream) -> Iterator[object]:
    """Start `gateway serve` (a real process, httptools) with extra settings."""
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": upstream.url}]}},
                 [{"name": "open", "match": {"prefix": "/public"}, "upstream": "main",
                   "public": True}])
    (tmp_path / "policies").mkdir()
    started: list[GatewayProcess] = []

    def start(**env: str) -> GatewayProcess:
        gw = GatewayProcess({"GATEWAY_ROUTES_FILE": str(tmp_path / "routes.yaml"),
                             "GATEWAY_POLICIES_DIR": str(tmp_path / "policies"),
                             "GATEWAY_DATA_DIR": str(tmp_path / "data"), **env}, tmp_path)
        started.append(gw.start())
        return gw

    yield start
    for gw in started:
        gw.stop()


def exchange(port: int, data: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    """Send raw bytes, read until the server closes: (status, headers, body). No
    half-close: uvicorn takes a client's EOF for the end of the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with contextlib.suppress(ConnectionError):  # refused mid-send: answer still comes
            s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def assert_problem(answer: tuple[int, dict[bytes, bytes], bytes], status: int,
                   request_id: bytes | None = None) -> dict[str, object]:
    got, headers, body = answer
    assert got == status, (got, headers, body)
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"connection"] == b"close"
    problem = orjson.loads(body)
    assert problem["status"] == status and problem["detail"] and problem["type"]
    assert problem["request_id"] == headers[b"x-request-id"].decode()
    if request_id is not None:
        assert headers[b"x-request-id"] == request_id
    return problem


def get(path: bytes = b"/public/x", headers: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\n" + headers + b"\r\n"


def test_oversized_heads_are_431_and_never_reach_the_upstream(serve, upstream):
    gw = serve()
    big = b"X-Request-ID: big-1\r\nX-Big: " + b"a" * 100 * KIB + b"\r\n"
    problem = assert_problem(exchange(gw.port, get(headers=big)), 431, b"big-1")
    assert "8192" in str(problem["detail"])
    many = b"".join(b"X-H-%d: %d\r\n" % (i, i) for i in range(2000))
    assert "100" in str(assert_problem(exchange(gw.port, get(headers=many)), 431)["detail"])
    # Five 7 KiB lines: each under the line limit, 35 KiB in all over the total.
    wide = b"".join(b"X-W-%d: %s\r\n" % (i, b"w" * 7 * KIB) for i in range(5))
    assert "32768" in str(assert_problem(exchange(gw.port, get(headers=wide)), 431)["detail"])
    assert_problem(exchange(gw.port, get(b"/public/" + b"u" * 9 * KIB)), 414)
    # A head that never ends is cut off too, not buffered without bound.
    endless = b"GET /public/x HTTP/1.1\r\nX-Endless: " + b"e" * 4 * KIB * KIB
    assert_problem(exchange(gw.port, endless), 431)
    assert upstream.heads == []
    # Just under every limit: served, and every header arrives upstream.
    ok = b"X-Line: " + b"o" * (8 * KIB - 14) + b"\r\n" + b"".join(
        b"X-N-%d: 1\r\n" % i for i in range(90))
    status, _, _ = exchange(gw.port, get(headers=ok + b"Connection: close\r\n"))
    assert status == 200
    assert len(upstream.heads) == 1 and b"o" * (8 * KIB - 14) in upstream.heads[0]
    assert b"x-n-89: 1" in upstream.heads[0].lower()  # names are case-insensitive


def test_header_limits_are_settings(serve, upstream):
    gw = serve(GATEWAY_MAX_HEADER_LINE_BYTES="2048", GATEWAY_MAX_HEADER_BYTES="4096",
               GATEWAY_MAX_HEADERS="20")
    assert_problem(exchange(gw.port, get(headers=b"X-A: " + b"a" * 2100 + b"\r\n")), 431)
    many = b"".join(b"X-H-%d: 1\r\n" % i for i in range(20))
    assert_problem(exchange(gw.port, get(headers=many)), 431)
    two = b"".join(b"X-T-%d: %s\r\n" % (i, b"t" * 1500) for i in range(3))
    assert_problem(exchange(gw.port, get(headers=two)), 431)
    assert upstream.heads == []
    status, _, _ = exchange(gw.port, get(headers=b"X-A: " + b"a" * 1900 + b"\r\n"
                                         b"Connection: close\r\n"))
    assert status == 200 and len(upstream.heads) == 1
    with pytest.raises(ValidationError, match="MAX_HEADER_LINE_BYTES"):
        Settings(max_header_line_bytes=64 * KIB, max_header_bytes=32 * KIB)


SMUGGLE = b"GET /public/smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"GARBAGE\r\n\r\n", id="garbage-request-line"),
    pytest.param(b"GET / HTTP/9.x\r\n\r\n", id="bad-version"),
    pytest.param(b"POST /public/x HTTP/1.1\r\nHost: gw\r\nX-Request-ID: neg-1\r\n"
                 b"Content-Length: -1\r\n\r\n", id="negative-content-length"),
    pytest.param(b"POST /public/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLE, id="cl-and-te"),
    pytest.param(b"POST /public/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: 4\r\n\r\n0\r\n\r\n" + SMUGGLE, id="te-and-cl"),
    pytest.param(b"POST /public/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n"
                 b"Content-Length: 45\r\n\r\n" + SMUGGLE, id="two-content-lengths"),
    pytest.param(b"POST /public/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n"
                 b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLE, id="two-te"),
    pytest.param(b"POST /public/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\n"
                 + SMUGGLE, id="te-not-chunked"),
])
def test_server_refusals_follow_the_contract(serve, upstream, request_bytes):
    """Refused before the app starts: nothing reaches the upstream."""
    gw = serve()
    request_id = b"neg-1" if b"neg-1" in request_bytes else None
    assert_problem(exchange(gw.port, request_bytes), 400, request_id)
    assert upstream.heads == []  # neither the request nor a smuggled one went upstream
    # The gateway is still serving.
    assert exchange(gw.port, get(headers=b"Connection: close\r\n"))[0] == 200


def test_a_broken_chunked_body_is_400_and_never_completes_upstream(serve, upstream):
    gw = serve()
    start = (b"POST /public/x HTTP/1.1\r\nHost: gw\r\nX-Request-ID: chunk-1\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(start)
        deadline = time.monotonic() + 5  # the head streams upstream with the first chunk
        while not upstream.heads and time.monotonic() < deadline:
            time.sleep(0.01)
        s.sendall(b"zz\r\nnot a chunk\r\n0\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"x-request-id: chunk-1" in head, answer
    assert orjson.loads(body)["request_id"] == "chunk-1"
    assert upstream.bodies == []  # the upstream never received a complete body


def test_limits_hold_for_every_request_of_a_keep_alive_connection(serve, upstream):
    gw = serve(GATEWAY_MAX_HEADERS="20")
    fine = b"".join(b"X-F-%d: 1\r\n" % i for i in range(15))
    status, headers, body = exchange(gw.port, get(headers=fine) + get(headers=fine)
                                     + get(headers=fine * 2))
    # The first two are answered on the connection (their counts start from zero each),
    # then the third is refused and the connection closed.
    answers = (headers.get(b"content-length", b""), body)
    assert status == 200, answers
    assert body.count(b"HTTP/1.1 200 OK") == 1 and b"HTTP/1.1 431 " in body, body
    assert len(upstream.heads) == 2
