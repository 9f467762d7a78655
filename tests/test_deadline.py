"""The upstream call's deadline: asyncio.timeout's rules, on real tasks and timers."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.deadline import Deadline


async def _bounded(seconds: float, work: float) -> str:
    deadline = Deadline(seconds)
    try:
        await asyncio.sleep(work)
    except asyncio.CancelledError:
        if deadline.end():
            raise TimeoutError from None
        raise
    deadline.end()
    return "done"


def test_work_within_the_deadline_finishes_and_is_not_cancelled_later() -> None:
    async def main() -> tuple[str, int]:
        result = await _bounded(0.2, 0.01)
        await asyncio.sleep(0.3)  # past the deadline: its timer must be gone
        task = asyncio.current_task()
        assert task is not None
        return result, task.cancelling()

    assert asyncio.run(main()) == ("done", 0)


def test_the_deadline_turns_its_own_cancellation_into_a_timeout() -> None:
    async def main() -> int:
        with pytest.raises(TimeoutError):
            await _bounded(0.02, 5)
        task = asyncio.current_task()
        assert task is not None
        await asyncio.sleep(0)  # the task goes on: nothing left pending
        return task.cancelling()

    assert asyncio.run(main()) == 0


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def main() -> None:
        inner = asyncio.create_task(_bounded(5, 5))
        await asyncio.sleep(0.01)
        inner.cancel()  # a client gone, a shutdown: not a timeout
        with pytest.raises(asyncio.CancelledError):
            await inner

    asyncio.run(main())


def test_a_cancellation_pending_with_the_expiry_stays_a_cancellation() -> None:
    async def both() -> str:
        deadline = Deadline(0.01)
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_later(0.02, task.cancel)  # from elsewhere
        time.sleep(0.05)  # noqa: ASYNC251 (blocks on purpose: both timers fall due at once)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if deadline.end():
                return "timeout"
            raise
        return "done"

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(both())

    asyncio.run(main())
