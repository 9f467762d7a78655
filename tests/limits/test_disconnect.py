"""Clients that give up: real `gateway serve` processes, a slow real upstream, clients
with a short timeout. The abandoned requests must free their in-flight slots at once,
on every replica (memory and Redis), abort their upstream calls (the backend sees the
connections close), be logged as 499 and counted, without error logs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.deployment import Deployment
from tests.processes import GatewayProcess
from tests.servers import free_port

pytestmark = pytest.mark.slow

CAP = 5
SLOW = 4.0  # seconds the upstream takes on /slow
GIVE_UP = 0.5  # the clients' timeout


class SlowUpstream:
    """A raw HTTP/1.1 server: /slow answers after SLOW s, /sse streams events, anything
    else answers at once. Records when a client connection closed before its answer."""

    def __init__(self) -> None:
        self.port = free_port()
        self.closed_early: list[str] = []  # paths whose connection closed unanswered
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                     ) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            if path.startswith("/sse"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                for _ in range(100):
                    writer.write(b"9\r\ndata: x\n\n\r\n")
                    await writer.drain()
                    with contextlib.suppress(TimeoutError):
                        if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                            self.closed_early.append(path)
                            return
                return
            if path.startswith("/slow"):
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), SLOW) == b"":
                        self.closed_early.append(path)
                        return
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            self._ready.set()
            await self._stop.wait()
            server.close()
            handlers = asyncio.all_tasks() - {asyncio.current_task()}
            for task in handlers:
                task.cancel()  # handlers still waiting out a slow answer
            await asyncio.gather(*handlers, return_exceptions=True)

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self) -> SlowUpstream:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=5)


@pytest.fixture
def slow_upstream() -> Iterator[SlowUpstream]:
    upstream = SlowUpstream().start()
    yield upstream
    upstream.stop()


def access_lines(replica: GatewayProcess) -> list[dict[str, object]]:
    lines = replica.log_path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def disconnects_counted(replica: GatewayProcess) -> float:
    text = httpx.get(replica.url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('gateway_client_disconnects_total{route="api"'))


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_clients_that_give_up_free_their_slots_at_once(tmp_path, slow_upstream, store,
                                                       request):
    redis = request.getfixturevalue("redis_server") if store == "redis" else None
    deployment = Deployment(tmp_path, redis).configure(
        {"slow": {"targets": [{"url": slow_upstream.url}]}},
        [{"name": "api", "match": {"prefix": "/api"}, "upstream": "slow", "rewrite": "/",
          "timeout": {"total": 30}}],
        {"capped": {"max_in_flight": CAP}}, {"acme": {"tier": "capped"}})
    settings = {"GATEWAY_LOG_FORMAT": "json", "GATEWAY_LOG_LEVEL": "info"}
    try:
        first = deployment.replica(**settings)
        # On Redis the next request goes to another replica; in memory, to the same one.
        second = deployment.replica(**settings) if redis is not None else first
        h = deployment.as_tenant("acme")

        async def give_up() -> float:
            async with httpx.AsyncClient(timeout=GIVE_UP) as client:
                async def one() -> None:
                    with contextlib.suppress(httpx.TimeoutException):
                        await client.get(first.url + "/api/slow", headers=h)
                        raise AssertionError("the slow upstream answered in time")

                await asyncio.gather(*(one() for _ in range(CAP)))
            return time.monotonic()

        gave_up = asyncio.run(give_up())
        time.sleep(max(0.0, gave_up + 0.1 - time.monotonic()))
        answer = httpx.get(second.url + "/api/fast", headers=h, timeout=5)
        assert answer.status_code == 200, answer.text  # within 100 ms: slots are free
        # The abandoned upstream calls are aborted, not left running: the backend sees
        # each of its CAP connections close long before it would have answered.
        deadline = gave_up + 1.0
        while slow_upstream.closed_early.count("/slow") < CAP:
            assert time.monotonic() < deadline, (
                f"{slow_upstream.closed_early.count('/slow')} of {CAP} upstream calls aborted")
            time.sleep(0.02)
        # The cap still holds: CAP slow requests in flight refuse one more.
        async def fill() -> list[int]:
            async with httpx.AsyncClient(timeout=SLOW + 5) as client:
                slow = [asyncio.ensure_future(client.get(first.url + "/api/slow", headers=h))
                        for _ in range(CAP)]
                await asyncio.sleep(0.5)
                extra = await client.get(second.url + "/api/fast", headers=h)
                return [extra.status_code, *(r.status_code for r in await asyncio.gather(*slow))]

        assert asyncio.run(fill()) == [429] + [200] * CAP

        assert disconnects_counted(first) == CAP
        lines = access_lines(first)
        assert sum(1 for line in lines if line.get("status") == 499) == CAP
        noisy = [line for line in lines if line.get("level") in ("error", "critical")]
        assert noisy == []
        assert "Traceback" not in first.log_path.read_text()
    finally:
        deployment.stop()


def test_a_client_leaving_a_stream_closes_the_upstream(tmp_path, slow_upstream):
    deployment = Deployment(tmp_path, None).configure(
        {"slow": {"targets": [{"url": slow_upstream.url}]}},
        [{"name": "api", "match": {"prefix": "/api"}, "upstream": "slow", "rewrite": "/"}],
        {}, {"acme": {}})
    try:
        gateway = deployment.replica()
        with httpx.stream("GET", gateway.url + "/api/sse", headers=deployment.as_tenant("acme"),
                          timeout=5) as r:
            assert r.status_code == 200
            next(r.iter_raw())
        deadline = time.monotonic() + 2
        while "/sse" not in slow_upstream.closed_early:
            assert time.monotonic() < deadline, "the upstream connection stayed open"
            time.sleep(0.02)
    finally:
        deployment.stop()


def test_requests_waiting_on_a_coalesced_leader_let_go_when_their_clients_leave(
        tmp_path, slow_upstream):
    """Followers of a coalesced miss whose clients give up free their slots at once,
    while the leader's own request goes on and is answered."""
    deployment = Deployment(tmp_path, None).configure(
        {"slow": {"targets": [{"url": slow_upstream.url}]}},
        [{"name": "api", "match": {"prefix": "/api"}, "upstream": "slow", "rewrite": "/",
          "timeout": {"total": 30}, "cache": {"ttl": 60}}],
        {"capped": {"max_in_flight": CAP}}, {"acme": {"tier": "capped"}})
    try:
        gateway = deployment.replica(GATEWAY_LOG_FORMAT="json", GATEWAY_LOG_LEVEL="info")
        h = deployment.as_tenant("acme")

        async def scenario() -> tuple[list[int], int]:
            async with httpx.AsyncClient(timeout=SLOW + 5) as patient:
                leader = asyncio.ensure_future(patient.get(gateway.url + "/api/slow", headers=h))
                await asyncio.sleep(0.3)  # the leader is on its way upstream

                async def follower() -> None:
                    async with httpx.AsyncClient(timeout=GIVE_UP) as client:
                        with contextlib.suppress(httpx.TimeoutException):
                            await client.get(gateway.url + "/api/slow", headers=h)
                            raise AssertionError("the slow upstream answered in time")

                await asyncio.gather(*(follower() for _ in range(CAP - 1)))
                await asyncio.sleep(0.1)
                # The followers' CAP - 1 slots are free again: as many fast calls pass.
                fast = await asyncio.gather(*(
                    patient.get(gateway.url + f"/api/fast-{i}", headers=h)
                    for i in range(CAP - 1)))
                return [r.status_code for r in fast], (await leader).status_code

        fast, led = asyncio.run(scenario())
        assert fast == [200] * (CAP - 1)
        assert led == 200
        deadline = time.monotonic() + 2  # the leader's line follows its answer
        while True:
            statuses = [line.get("status") for line in access_lines(gateway)
                        if line.get("path") == "/api/slow"]
            if len(statuses) == CAP or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sorted(statuses, key=str) == [200] + [499] * (CAP - 1), statuses
    finally:
        deployment.stop()
