"""The rate-limit strategies: what each decides for one limit, in integer microseconds.

Each strategy is a pair of pure functions over one limit's state (`amount` units per
`window` µs), run by the memory store; the Redis store runs the same arithmetic in
`lua/limit_<name>.lua` (same names, same order of operations), so both backends decide
alike. docs/rate-limits.md states what each promises; tests/limits/test_exactness.py
checks it over both.

    decide(state, amount, window, cost, now) -> Decision   (reads; charges nothing)
    commit(state, amount, window, cost, now) -> (new state, expires at µs)

`Decision` fields, all in units or µs: `ok` (room for `cost`), `left` (units left after
charging it), `left_now` (before), `reset` / `reset_now` (µs until one more unit frees,
after / before the charge; a whole window when nothing is used), `retry` (µs until
`cost` units are free; a whole window when `cost` exceeds the limit itself).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

StrategyName = Literal["gcra", "moving-window", "sliding-window-counter", "fixed-window"]


# A named tuple's own constructor is a Python function; tuple's is not (gcra's admitted
# decision, made for every limited request).
_tuple_new = tuple.__new__


class Decision(NamedTuple):
    ok: bool
    left: int
    left_now: int
    reset: int
    reset_now: int
    retry: int


def _refused(left_now: int, reset_now: int, retry: int) -> Decision:
    return Decision(False, 0, left_now, reset_now, reset_now, retry)


# -- gcra: a bucket of `amount` units refilled one unit every ceil(window / amount) µs.
# State: the theoretical arrival time (TAT), the instant the bucket is full again.

def _interval(amount: int, window: int) -> int:
    return -(-window // amount)  # rounded up: never refills faster than stated


def gcra_decide(tat: int | None, amount: int, window: int, cost: int, now: int) -> Decision:
    interval = -(-window // amount)  # _interval, inline: this runs for every request
    burst = interval * amount
    used = tat - now if tat is not None and tat > now else 0  # µs of the bucket in use
    # µs until n units are free, with b µs of the bucket in use: max(0, b - (burst - n *
    # interval)); written out below (a nested function would be made on every call).
    left_now = (burst - used) // interval
    if left_now < amount:
        reset_now = used - burst + (left_now + 1) * interval
        reset_now = reset_now if reset_now > 0 else 0
    else:
        reset_now = window
    if cost > amount:
        retry = window
    else:
        retry = used - burst + cost * interval
        retry = retry if retry > 0 else 0
    after = used + cost * interval
    if after > burst:
        return _refused(left_now, reset_now, retry)
    left = (burst - after) // interval
    if left < amount:
        reset = after - burst + (left + 1) * interval
        reset = reset if reset > 0 else 0
    else:
        reset = window
    return _tuple_new(Decision, (True, left, left_now, reset, reset_now, 0))


def gcra_commit(tat: int | None, amount: int, window: int, cost: int, now: int
                ) -> tuple[int, int]:
    new = max(tat or now, now) + cost * _interval(amount, window)
    return new, new


def gcra_settle(tat: int | None, amount: int, window: int, delta: int, now: int
                ) -> int | None:
    """Correct an earlier charge by `delta` units, never refusing: more (an over-run, which
    may leave the bucket below empty until it refills) or fewer (a refund, down to a full
    bucket). The new TAT, or None for a full bucket."""
    new = max(tat or now, now) + delta * _interval(amount, window)
    return new if new > now else None


# -- moving-window: every charge remembered for one window; a unit counts while
# stamp > now - window. State: (stamp, units) pairs, oldest first, and their sum.

class Window:
    __slots__ = ("entries", "units")

    def __init__(self) -> None:
        self.entries: deque[tuple[int, int]] = deque()
        self.units = 0


def moving_window_decide(state: Window | None, amount: int, window: int, cost: int,
                         now: int) -> Decision:
    w = state if state is not None else Window()
    entries = w.entries
    while entries and entries[0][0] <= now - window:  # expired: dropped, decides nothing
        w.units -= entries.popleft()[1]

    def wait(units: int) -> int:  # µs until the oldest `excess` units have expired
        excess = w.units - (amount - units)
        for stamp, n in entries:
            if excess <= 0:
                break
            excess -= n
            if excess <= 0:
                return stamp + window - now
        return 0

    left_now = amount - w.units
    reset_now = wait(left_now + 1) if left_now < amount else window
    retry = window if cost > amount else wait(cost)
    if w.units + cost > amount:
        return _refused(left_now, reset_now, retry)
    left = left_now - cost
    # The oldest unit in the window frees first, or else this charge's own.
    reset = entries[0][0] + window - now if entries else window
    return Decision(True, left, left_now, reset, reset_now, 0)


def moving_window_commit(state: Window | None, amount: int, window: int, cost: int,
                         now: int) -> tuple[Window, int]:
    w = state if state is not None else Window()
    w.entries.append((now, cost))
    w.units += cost
    return w, now + window


# -- fixed-window: a counter per window aligned to the epoch. State: (index, count).

def fixed_window_decide(state: tuple[int, int] | None, amount: int, window: int, cost: int,
                        now: int) -> Decision:
    index = now // window
    count = state[1] if state is not None and state[0] == index else 0
    end = (index + 1) * window - now
    left_now = amount - count
    reset_now = end if count else window
    if count + cost > amount:
        return _refused(left_now, reset_now, window if cost > amount else end)
    return Decision(True, left_now - cost, left_now, end if count + cost else window,
                    reset_now, 0)


def fixed_window_commit(state: tuple[int, int] | None, amount: int, window: int, cost: int,
                        now: int) -> tuple[tuple[int, int], int]:
    index = now // window
    count = state[1] if state is not None and state[0] == index else 0
    return (index, count + cost), (index + 1) * window


# -- sliding-window-counter: this window's count plus the previous window's, weighted by
# the share of it still inside the last `window` µs. State: (index, count, previous).

def _counts(state: tuple[int, int, int] | None, index: int) -> tuple[int, int]:
    if state is None or state[0] < index - 1:
        return 0, 0
    if state[0] == index - 1:
        return 0, state[1]
    return state[1], state[2]


def sliding_window_counter_decide(state: tuple[int, int, int] | None, amount: int,
                                  window: int, cost: int, now: int) -> Decision:
    index = now // window
    cur, prev = _counts(state, index)
    elapsed = now - index * window

    def wait(count: int, units: int) -> int:  # µs until the weighted count <= amount - units
        target = amount - units
        if prev * (window - elapsed) / window + count <= target:
            return 0
        if count <= target:  # the previous window's share decays within this one
            return math.ceil(window * (1 - (target - count) / prev) - elapsed)
        # only once this window's count is the previous one, decaying in the next
        return math.ceil(window - elapsed + window * (1 - target / count))

    weighted = prev * (window - elapsed) / window + cur
    left_now = max(0, math.floor(amount - weighted))
    reset_now = wait(cur, left_now + 1) if weighted > 0 else window
    retry = window if cost > amount else wait(cur, cost)
    if weighted + cost > amount:
        return _refused(left_now, reset_now, retry)
    left = max(0, math.floor(amount - weighted - cost))
    reset = wait(cur + cost, left + 1) if weighted + cost > 0 else window
    return Decision(True, left, left_now, reset, reset_now, 0)


def sliding_window_counter_commit(state: tuple[int, int, int] | None, amount: int,
                                  window: int, cost: int, now: int
                                  ) -> tuple[tuple[int, int, int], int]:
    index = now // window
    cur, prev = _counts(state, index)
    return (index, cur + cost, prev), (index + 2) * window


class Strategy(NamedTuple):
    """One strategy: its memory functions and the Lua file that does the same on Redis."""

    decide: Callable[[Any, int, int, int, int], Decision]
    commit: Callable[[Any, int, int, int, int], tuple[Any, int]]
    lua: str  # gateway/stores/lua/<lua>.lua
    tag: str  # in its Redis keys, so switching strategies never misreads another's state


STRATEGIES: dict[str, Strategy] = {
    "gcra": Strategy(gcra_decide, gcra_commit, "limit_gcra", "g"),
    "moving-window": Strategy(moving_window_decide, moving_window_commit,
                              "limit_moving_window", "mw"),
    "sliding-window-counter": Strategy(sliding_window_counter_decide,
                                       sliding_window_counter_commit,
                                       "limit_sliding_window_counter", "swc"),
    "fixed-window": Strategy(fixed_window_decide, fixed_window_commit,
                             "limit_fixed_window", "fw"),
}
