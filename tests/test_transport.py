"""The production transport against a real HTTP server on loopback: the in-use cap
(GATEWAY_UPSTREAM_POOL_SIZE), a cancelled send closing its connection, and which
failure each way of not answering is."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.transport import AttemptFailed, UpstreamRequest, Http1Transport


class Upstream:
    """Answers after `delay`; /sse streams until the client closes. Counts requests in
    progress and connections closed before their answer."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.active = self.peak = 0
        self.closed_early = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                if b" /sse " in head:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"transfer-encoding: chunked\r\n\r\n9\r\ndata: x\n\n\r\n")
                    await writer.drain()
                    await reader.read(1)  # until the client closes
                    return
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), self.delay) == b"":
                        self.closed_early += 1
                        return
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
            finally:
                self.active -= 1
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def serve(upstream: Upstream) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def request(url: str, total: float = 5.0) -> UpstreamRequest:
    return UpstreamRequest("GET", url, [("x-a", "1"), ("x-a", "2")], None, 1.0, total)


def test_at_most_pool_size_requests_are_in_use_at_once():
    async def scenario() -> tuple[list[int], int]:
        upstream = Upstream(delay=0.2)
        server, url = await serve(upstream)
        transport = Http1Transport(pool_size=2)
        answers = await asyncio.gather(*(transport.send(request(url + "/x"))
                                         for _ in range(6)))
        server.close()
        return [a.status for a in answers], upstream.peak

    statuses, peak = asyncio.run(scenario())
    assert statuses == [200] * 6
    assert peak == 2


def test_a_stream_holds_its_place_until_released():
    async def scenario() -> tuple[bool, int]:
        upstream = Upstream(delay=0.0)
        server, url = await serve(upstream)
        transport = Http1Transport(pool_size=1)
        streamed = await transport.send(request(url + "/sse"))
        assert streamed.stream is not None and streamed.release is not None
        waiting = asyncio.ensure_future(transport.send(request(url + "/fast")))
        await asyncio.sleep(0.2)
        blocked = not waiting.done()
        await streamed.release()
        answer = await asyncio.wait_for(waiting, 2)
        server.close()
        return blocked, answer.status

    assert asyncio.run(scenario()) == (True, 200)


def test_a_cancelled_send_closes_its_connection():
    async def scenario() -> int:
        upstream = Upstream(delay=5.0)
        server, url = await serve(upstream)
        transport = Http1Transport()
        sending = asyncio.ensure_future(transport.send(request(url + "/slow")))
        await asyncio.sleep(0.2)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
        for _ in range(50):
            if upstream.closed_early:
                break
            await asyncio.sleep(0.02)
        server.close()
        return upstream.closed_early

    assert asyncio.run(scenario()) >= 1


@pytest.mark.parametrize(("where", "kind"), [("refused", "connect"), ("late", "timeout")])
def test_failures_are_told_apart(where, kind):
    async def scenario() -> str:
        upstream = Upstream(delay=5.0)
        server, url = await serve(upstream)
        if where == "refused":
            server.close()
            await server.wait_closed()
        try:
            await Http1Transport().send(request(url + "/slow", total=0.3))
        except AttemptFailed as exc:
            return exc.failure.kind
        finally:
            server.close()
        return "answered"

    assert asyncio.run(scenario()) == kind
