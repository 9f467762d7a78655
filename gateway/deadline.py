"""A deadline over the awaits of the running task: `asyncio.timeout`, lighter.

    deadline = Deadline(seconds)        # armed at once, on the running task
    try:
        ...                             # awaits; at the deadline the task is cancelled
    except asyncio.CancelledError:
        if deadline.end():              # its own cancellation: a timeout
            raise TimeoutError from None
        raise
    else:
        deadline.end()

Same rules as `asyncio.timeout` (a cancellation the deadline made becomes a timeout;
one from elsewhere, a client gone or a shutdown, stays a cancellation), but two calls
and one loop timer where `async with asyncio.timeout()` makes seven Python calls and
an object more: it bounds every upstream call, so it runs for every proxied request.
"""

from __future__ import annotations

import asyncio

from gateway.disconnect import request_task


class Deadline:
    """Cancels the running task `seconds` from now unless `end` comes first."""

    __slots__ = ("cancelling", "expired", "task", "timer")

    def __init__(self, seconds: float):
        self.task = task = request_task()
        self.cancelling = task.cancelling()
        self.expired = False
        # The task's own loop: asyncio.get_running_loop() makes a getpid() system call on
        # Python 3.11, and request_task() has made one already.
        self.timer: asyncio.TimerHandle | None = task.get_loop().call_later(
            seconds, self._expire)

    def _expire(self) -> None:
        self.timer = None
        self.expired = True
        self.task.cancel()

    def end(self) -> bool:
        """Disarm; True if the deadline passed and no other cancellation is pending, so
        a CancelledError now is the deadline's own (call once, when the awaits end)."""
        timer = self.timer
        if timer is not None:
            self.timer = None
            timer.cancel()
            return False
        if not self.expired:
            return False  # ended before
        self.expired = False
        return self.task.uncancel() <= self.cancelling
