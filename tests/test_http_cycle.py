"""The server's answer writer (`gateway.http_cycle.GatewayCycle`) against uvicorn's own
`RequestResponseCycle`: the same messages must put the same bytes on the wire and leave
the connection in the same state, with a whole answer in one write. (End to end, every
test that talks to `gateway serve` goes through it too.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from gateway.http_cycle import GatewayCycle, KeepAlive

DATE = [(b"date", b"Thu, 03 Dec 2026 18:00:00 GMT")]


class RecordingTransport:
    """What a cycle writes, one entry per write; whether it closed the connection."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def make(cls: type[Any], transport: RecordingTransport, method: str = "POST",
         keep_alive: bool = True, on_response: Any = lambda: None,
         default_headers: list[tuple[bytes, bytes]] = DATE) -> Any:
    """A cycle of either kind, for one request with this method."""
    flow = FlowControl(transport)  # type: ignore[arg-type]
    if cls is GatewayCycle:
        return GatewayCycle({"method": method}, transport, flow,  # type: ignore[arg-type]
                            default_headers, keep_alive, False, on_response)
    return RequestResponseCycle(scope={"method": method}, transport=transport,  # type: ignore[arg-type]
                                flow=flow, logger=logging.getLogger("t"),
                                access_logger=logging.getLogger("t"), access_log=False,
                                default_headers=default_headers, message_event=asyncio.Event(),
                                expect_100_continue=False, keep_alive=keep_alive,
                                on_response=on_response)


def run(cls: type[Any], messages: list[dict[str, Any]], method: str = "POST",
        keep_alive: bool = True) -> tuple[RecordingTransport, Any, int]:
    transport = RecordingTransport()
    completed = 0

    def on_response() -> None:
        nonlocal completed
        completed += 1

    async def main() -> Any:
        cycle = make(cls, transport, method, keep_alive, on_response)
        for message in messages:
            await cycle.send(message)
        return cycle

    cycle = asyncio.run(main())
    return transport, cycle, completed


def start(status: int, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(data: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


JSON = (b"content-type", b"application/json")
ANSWERS = {
    "whole": ([start(200, JSON, (b"content-length", b"2")), body(b"{}")], "POST", True),
    "whole in parts": ([start(200, (b"content-length", b"6")), body(b"ab", more=True),
                        body(b"cd", more=True), body(b"ef")], "POST", True),
    "empty first part": ([start(200, (b"content-length", b"3")), body(b"", more=True),
                          body(b"abc")], "POST", True),
    "chunked stream": ([start(200, (b"content-type", b"text/event-stream")),
                        body(b"data: 1\n\n", more=True), body(b"")], "POST", True),
    "declared chunked": ([start(200, (b"transfer-encoding", b"chunked")),
                          body(b"xy", more=True), body(b"")], "GET", True),
    "HEAD": ([start(200, (b"content-length", b"10")), body(b"")], "HEAD", True),
    "204": ([start(204), body(b"")], "DELETE", True),
    "length 0": ([start(200, (b"content-length", b"0")), body(b"")], "GET", True),
    "app closes": ([start(200, (b"content-length", b"1"), (b"connection", b"Keep-Alive, close")),
                    body(b"x")], "GET", True),
    "server closes": ([start(503, (b"content-length", b"1")), body(b"x")], "GET", False),
}


@pytest.mark.parametrize("name", list(ANSWERS))
def test_the_same_bytes_and_state_as_uvicorns_cycle(name: str) -> None:
    messages, method, keep_alive = ANSWERS[name]
    ours, our_cycle, our_done = run(GatewayCycle, messages, method, keep_alive)
    theirs, their_cycle, their_done = run(RequestResponseCycle, messages, method, keep_alive)
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert (ours.closed, our_done) == (theirs.closed, their_done)
    for attr in ("response_complete", "keep_alive", "chunked_encoding",
                 "expected_content_length"):
        assert getattr(our_cycle, attr) == getattr(their_cycle, attr), attr


def test_a_whole_answer_is_one_write() -> None:
    transport, _, done = run(GatewayCycle, ANSWERS["whole"][0])
    assert len(transport.writes) == 1 and done == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n{}")


def test_a_stream_head_is_not_held_back() -> None:
    transport, cycle, _ = run(GatewayCycle, [start(200, (b"content-type", b"text/event-stream"))])
    assert len(transport.writes) == 1 and b"transfer-encoding: chunked" in transport.writes[0]
    assert cycle.response_started and not cycle.response_complete


@pytest.mark.parametrize("header", [
    (b"x-evil", b"a\r\nset-cookie: s=1"),
    (b"x-evil", b"a\nb"),
    (b"x-evil", b"a\rb"),
    (b"x-evil\r\nset-cookie", b"s=1"),
])
def test_cr_or_lf_in_a_header_is_refused_and_nothing_is_written(header) -> None:
    with pytest.raises(RuntimeError, match="CR or LF"):
        run(GatewayCycle, [start(200, header, (b"content-length", b"0")), body(b"")])
    transport = RecordingTransport()
    cycle = make(GatewayCycle, transport, "GET", default_headers=[])
    with pytest.raises(RuntimeError):
        asyncio.run(cycle.send(start(200, header)))
    assert transport.writes == []


@pytest.mark.parametrize("parts, error", [
    ([body(b"abc")], "longer"),
    ([body(b"a")], "shorter"),
])
def test_a_body_that_breaks_its_declared_length_fails_as_in_uvicorn(parts, error) -> None:
    messages = [start(200, (b"content-length", b"2")), *parts]
    for cls in (GatewayCycle, RequestResponseCycle):
        with pytest.raises(RuntimeError, match=error):
            run(cls, messages)


def test_a_second_receive_waits_for_the_disconnect() -> None:
    """The body comes whole at once; a later receive (the disconnect watch) must wait
    for the connection to end, not get the body again."""
    async def main() -> tuple[dict[str, Any], bool, dict[str, Any]]:
        transport = RecordingTransport()
        cycle = make(GatewayCycle, transport, default_headers=[])
        cycle.body += b'{"a": 1}'
        cycle.more_body = False
        cycle.wake()
        first = await cycle.receive()
        second = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0.01)
        waiting = not second.done()
        cycle.disconnect()
        return first, waiting, await second

    first, waiting, second = asyncio.run(main())
    assert first == {"type": "http.request", "body": b'{"a": 1}', "more_body": False}
    assert waiting and second == {"type": "http.disconnect"}


def test_keep_alive_closes_only_a_connection_idle_for_the_whole_period() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        closed: list[float] = []
        started = loop.time()
        keep_alive = KeepAlive(loop, 0.2, lambda: closed.append(loop.time() - started))
        keep_alive.idle()                  # an answer ended
        await asyncio.sleep(0.1)
        keep_alive.busy()                  # the next request came...
        await asyncio.sleep(0.05)
        keep_alive.idle()                  # ...and was answered at 0.15 s
        await asyncio.sleep(0.6)
        busy = KeepAlive(loop, 0.1, lambda: closed.append(-1.0))
        busy.idle()
        busy.busy()                        # a request in flight is never cut
        await asyncio.sleep(0.2)
        cancelled = KeepAlive(loop, 0.05, lambda: closed.append(-2.0))
        cancelled.idle()
        cancelled.cancel()                 # the connection ended
        await asyncio.sleep(0.1)
        return closed

    closed = asyncio.run(main())
    assert len(closed) == 1 and 0.33 <= closed[0] < 0.75  # 0.15 s + the 0.2 s period


@pytest.mark.parametrize("cls", [GatewayCycle, RequestResponseCycle])
def test_a_streamed_body_arrives_in_order_then_the_disconnect(cls: type[Any]) -> None:
    """Body parts that come while the app waits (a large or slow upload), a 100-continue
    owed before the first read, and the end of the connection, as uvicorn delivers them:
    both cycles run the same script."""
    async def main() -> tuple[list[dict[str, Any]], list[bytes]]:
        transport = RecordingTransport()
        cycle = make(cls, transport, default_headers=[])
        cycle.waiting_for_100_continue = True
        signal = cycle.wake if cls is GatewayCycle else cycle.message_event.set

        async def feed() -> None:
            for part in (b"ab", b"cd"):
                await asyncio.sleep(0.01)
                cycle.body += part
                signal()
            await asyncio.sleep(0.01)
            cycle.more_body = False
            signal()
            await asyncio.sleep(0.01)
            cycle.disconnected = True
            signal()

        feeder = asyncio.ensure_future(feed())
        got = [await cycle.receive() for _ in range(4)]
        await feeder
        return got, transport.writes

    got, writes = asyncio.run(main())
    assert writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert got == [{"type": "http.request", "body": b"ab", "more_body": True},
                   {"type": "http.request", "body": b"cd", "more_body": True},
                   {"type": "http.request", "body": b"", "more_body": False},
                   {"type": "http.disconnect"}]
