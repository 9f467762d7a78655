"""DisconnectWatch on its own: the uvicorn sweep, the receive() fallback, disarm."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.disconnect import DisconnectWatch


class Cycle:
    """What uvicorn's request cycle offers: a `disconnected` flag, `receive` a method."""

    def __init__(self) -> None:
        self.disconnected = False

    async def receive(self) -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}


def plain_receive(gone: asyncio.Event) -> Any:
    """Another server's receive(): only an awaited call can tell of the disconnect."""
    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}
    return receive


async def _request(watch: DisconnectWatch, receive: Any, armed: asyncio.Event,
                   ctx: Any) -> str:
    watch.arm(receive, ctx)
    armed.set()
    try:
        await asyncio.sleep(5)
        return "answered"
    except asyncio.CancelledError:
        if not watch.absorb():
            raise
        return "client gone"
    finally:
        watch.disarm(receive)


@pytest.mark.parametrize("server", ["uvicorn", "other"])
def test_a_disconnect_cancels_the_request_which_cleans_up(server):
    async def go() -> None:
        watch = DisconnectWatch(interval=0.01)
        cycle, gone, armed = Cycle(), asyncio.Event(), asyncio.Event()
        receive = cycle.receive if server == "uvicorn" else plain_receive(gone)
        ctx = SimpleNamespace(upstream_target="http://upstream",  # waiting on it
                              awaiting_leader=False)
        request = asyncio.create_task(_request(watch, receive, armed, ctx))
        await armed.wait()
        await asyncio.sleep(0.05)
        assert not request.done()
        cycle.disconnected = True
        gone.set()
        assert await asyncio.wait_for(request, 1) == "client gone"
        assert not request.cancelling()

    asyncio.run(go())


def test_nothing_is_cancelled_once_disarmed_or_for_another_reason():
    async def go() -> None:
        watch = DisconnectWatch(interval=0.01)
        cycle = Cycle()
        task = asyncio.create_task(asyncio.sleep(1))
        watch.arm(cycle.receive, SimpleNamespace(upstream_target="u", awaiting_leader=False), task)  # type: ignore[arg-type]
        watch.disarm(cycle.receive)
        cycle.disconnected = True
        await asyncio.sleep(0.05)
        assert not task.cancelled() and not task.done()
        assert not watch.absorb()  # nothing the watch did
        task.cancel()

    asyncio.run(go())


@pytest.mark.parametrize("waits_on", ["upstream", "leader"])
def test_a_request_is_only_cancelled_once_it_waits_on_the_upstream(waits_on):
    """Never inside a policy's step: a charge cut short would leave its slot behind."""
    async def go() -> None:
        watch = DisconnectWatch(interval=0.01)
        cycle, armed = Cycle(), asyncio.Event()
        ctx = SimpleNamespace(upstream_target="", awaiting_leader=False)  # still in the policies
        request = asyncio.create_task(_request(watch, cycle.receive, armed, ctx))
        await armed.wait()
        cycle.disconnected = True
        await asyncio.sleep(0.05)
        assert not request.done()
        if waits_on == "upstream":
            ctx.upstream_target = "http://upstream"
        else:  # a coalesced leader's answer
            ctx.awaiting_leader = True
        assert await asyncio.wait_for(request, 1) == "client gone"

    asyncio.run(go())
