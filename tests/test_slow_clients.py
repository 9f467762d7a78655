"""Slow and half-closed clients against a real `gateway serve` (gateway/http_protocol.py):
a head sent a byte a second and a body that stalls are cut off by GATEWAY_HEADER_TIMEOUT
and GATEWAY_BODY_TIMEOUT (short here) with a 408 problem while others are served; idle
connections are closed, a kept-alive one 5 s after its last answer; a client that
half-closes is taken for one that left."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import Iterator

import orjson
import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from tests.conftest import write_routes
from tests.processes import GatewayProcess
from tests.test_http_protocol import RecordingUpstream, assert_problem, exchange, get


class LateUpstream(RecordingUpstream):
    """Answers /public/late after half a second: the client's EOF arrives first."""

    @staticmethod
    async def _body(reader: asyncio.StreamReader, head: bytes) -> bytes:
        body = await RecordingUpstream._body(reader, head)
        if b"/public/late " in head.split(b"\r\n", 1)[0]:
            await asyncio.sleep(0.5)
        return body


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = LateUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: RecordingUpstream
       ) -> Iterator[GatewayProcess]:
    """One gateway for the module (a start costs seconds on a loaded machine), with
    1-second head and body timeouts."""
    tmp = tmp_path_factory.mktemp("slow")
    write_routes(tmp / "routes.yaml", {"main": {"targets": [{"url": upstream.url}]}},
                 [{"name": "open", "match": {"prefix": "/public"}, "upstream": "main",
                   "public": True}])
    (tmp / "policies").mkdir()
    gateway = GatewayProcess({"GATEWAY_ROUTES_FILE": str(tmp / "routes.yaml"),
                              "GATEWAY_POLICIES_DIR": str(tmp / "policies"),
                              "GATEWAY_DATA_DIR": str(tmp / "data"),
                              "GATEWAY_HEADER_TIMEOUT": "1", "GATEWAY_BODY_TIMEOUT": "1"},
                             tmp).start()
    yield gateway
    gateway.stop()


def read_all(s: socket.socket) -> tuple[int, dict[bytes, bytes], bytes]:
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return (int(lines[0].split()[1]), dict(line.lower().split(b": ", 1) for line in lines[1:]),
            body)


def served(port: int) -> int:
    return exchange(port, get(headers=b"Connection: close\r\n"))[0]


def test_a_slowloris_head_is_cut_off_and_others_are_served(gw, upstream):
    head = get(b"/public/slowloris", b"X-Request-ID: slow-1\r\n")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        for sent, byte in enumerate(head):  # a byte every 0.2 s: never complete in 1 s
            s.sendall(bytes([byte]))
            if sent == 2:
                assert served(gw.port) == 200  # meanwhile another client is served
            if select.select([s], [], [], 0.2)[0]:
                break  # the gateway answered
        status, headers, body = read_all(s)
    assert status == 408 and headers[b"content-type"] == b"application/problem+json"
    assert orjson.loads(body)["status"] == 408
    assert sent < len(head) - 1  # cut off before the head ended
    assert not any(b"slowloris" in h for h in upstream.heads)


def test_a_stalled_body_is_cut_off_and_never_forwarded_complete(gw, upstream):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"POST /public/x HTTP/1.1\r\nHost: gw\r\nX-Request-ID: stall-1\r\n"
                  b"Content-Length: 100\r\n\r\n" + b"p" * 40)
        assert served(gw.port) == 200
        answer = read_all(s)  # the body never comes: the gateway ends it
    assert_problem(answer, 408, b"stall-1")
    assert upstream.bodies.count(b"p" * 40) == 0 and b"p" * 100 not in upstream.bodies
    # A slow body that keeps sending within the timeout is not cut.
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"POST /public/x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
                  b"Content-Length: 6\r\n\r\n")
        for part in (b"ab", b"cd", b"ef"):
            time.sleep(0.5)
            s.sendall(part)
        assert read_all(s)[0] == 200
    assert b"abcdef" in upstream.bodies


def test_idle_connections_are_closed_and_do_not_block_others(gw):
    idle = [socket.create_connection(("127.0.0.1", gw.port), timeout=10) for _ in range(200)]
    try:
        assert served(gw.port) == 200
        for s in idle:  # each closed by the gateway, without an answer
            assert s.recv(1024) == b""
    finally:
        for s in idle:
            s.close()
    assert served(gw.port) == 200


def read_answer(s: socket.socket) -> bytes:
    """One answer with a Content-Length off a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += s.recv(65536)
    return head


def test_a_kept_alive_connection_is_closed_5s_after_its_last_answer(gw):
    """uvicorn's keep-alive timeout (5 s) counts from the last answer, not the first:
    a second request 2 s in moves the close to about 7 s (gateway.http_cycle.KeepAlive)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=15) as s:
        s.sendall(get())
        assert read_answer(s).startswith(b"HTTP/1.1 200")
        time.sleep(2)
        s.sendall(get())
        assert read_answer(s).startswith(b"HTTP/1.1 200")
        answered = time.monotonic()
        assert s.recv(1024) == b""  # closed by the gateway, with nothing more sent
        idle = time.monotonic() - answered
    assert 4.0 <= idle <= 6.5, idle


def test_a_half_closed_client_is_a_client_that_left(gw, upstream):
    """Its FIN cannot be told from a close: the request is dropped at once (the upstream
    answers /public/late after 0.5 s), without an answer, and the gateway serves on."""
    for request in (get(b"/public/late", b"X-Request-ID: half-1\r\n"),
                    b"POST /public/late HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc"):
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
            started = time.monotonic()
            answer = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := s.recv(65536):
                    answer += chunk
            closed_after = time.monotonic() - started
        assert answer == b"" and closed_after < 0.45, (answer, closed_after)
    assert served(gw.port) == 200


def test_the_timeouts_are_validated_settings():
    assert Settings().header_timeout == 10 and Settings().body_timeout == 30
    with pytest.raises(ValidationError, match="header_timeout"):
        Settings(header_timeout=0)
