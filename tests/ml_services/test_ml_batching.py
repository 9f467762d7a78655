"""MicroBatcher on its own: gathering, slicing, failure isolation, cancellation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from ml_services.batching import MicroBatcher


class Recorder:
    """A fake model: echoes each text upper-cased, records each call's batch."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, texts: Sequence[str]) -> list[str]:
        self.calls.append(list(texts))
        if self.fail_on is not None and any(self.fail_on in t for t in texts):
            raise ValueError("bad input")
        return [t.upper() for t in texts]


@pytest.mark.parametrize("inline", [0, 10_000])
def test_concurrent_submits_share_model_calls_and_get_their_own_results(inline: int) -> None:
    model = Recorder()

    async def scenario() -> list[list[str]]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=5, executor=pool,
                                   inline_max_texts=inline)
            requests = [[f"r{i}-a", f"r{i}-b"] for i in range(40)]
            results = await asyncio.gather(*(batcher.submit(r) for r in requests))
            await batcher.close()
            return list(results)

    results = asyncio.run(scenario())
    assert results == [[f"R{i}-A", f"R{i}-B"] for i in range(40)]
    assert len(model.calls) < 40
    assert all(len(batch) <= 64 for batch in model.calls)
    assert sum(len(batch) for batch in model.calls) == 80


def test_batch_never_exceeds_max_batch_size_but_never_splits_a_request() -> None:
    model = Recorder()

    async def scenario() -> None:
        batcher = MicroBatcher(model, max_batch_size=3, max_wait_ms=5)
        big = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b", "c", "d", "e"]),
                                   batcher.submit(["f", "g"]))
        assert list(big) == [["A"], ["B", "C", "D", "E"], ["F", "G"]]
        await batcher.close()

    asyncio.run(scenario())
    assert ["b", "c", "d", "e"] in model.calls  # oversize request: a batch of its own
    assert all(len(b) <= 3 for b in model.calls if b != ["b", "c", "d", "e"])


def test_a_failing_request_does_not_fail_the_others_in_its_batch() -> None:
    model = Recorder(fail_on="BOOM")

    async def scenario() -> list[object]:
        batcher = MicroBatcher(model, max_batch_size=100, max_wait_ms=10)
        results = await asyncio.gather(
            batcher.submit(["fine 1"]), batcher.submit(["BOOM"]), batcher.submit(["fine 2"]),
            return_exceptions=True,
        )
        after = await batcher.submit(["later"])
        await batcher.close()
        return [*results, after]

    ok1, bad, ok2, later = asyncio.run(scenario())
    assert ok1 == ["FINE 1"]
    assert ok2 == ["FINE 2"]
    assert isinstance(bad, ValueError)
    assert later == ["LATER"]
    assert model.calls[0] == ["fine 1", "BOOM", "fine 2"]  # they were one batch at first


def test_cancelled_request_does_not_wedge_the_batcher() -> None:
    gate = threading.Event()
    seen: list[list[str]] = []

    def slow_model(texts: Sequence[str]) -> list[str]:
        seen.append(list(texts))
        gate.wait(5)
        return list(texts)

    async def scenario() -> list[str]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(slow_model, max_batch_size=10, executor=pool)
            first = asyncio.ensure_future(batcher.submit(["first"]))
            await asyncio.sleep(0.05)  # "first" is now computing and holds the worker
            doomed = asyncio.ensure_future(batcher.submit(["doomed"]))
            await asyncio.sleep(0.01)
            doomed.cancel()  # cancelled while queued
            first.cancel()  # cancelled while its batch computes
            gate.set()
            result = await asyncio.wait_for(batcher.submit(["after"]), 5)
            await batcher.close()
            assert doomed.cancelled() and first.cancelled()
            return result

    assert asyncio.run(scenario()) == ["after"]
    assert ["doomed"] not in seen  # skipped, never computed


def test_counters_and_observer() -> None:
    observed: list[int] = []
    model = Recorder()

    async def scenario() -> MicroBatcher[str]:
        batcher = MicroBatcher(model, max_batch_size=100, max_wait_ms=5,
                               on_call=lambda n, _s: observed.append(n))
        await asyncio.gather(*(batcher.submit([str(i)]) for i in range(10)))
        await batcher.close()
        return batcher

    batcher = asyncio.run(scenario())
    assert batcher.texts == 10 == sum(observed)
    assert batcher.model_calls == len(model.calls) == len(observed)
    assert not batcher.alive  # closed


def test_wrong_result_count_is_an_error() -> None:
    async def scenario() -> None:
        batcher: MicroBatcher[str] = MicroBatcher(lambda texts: [], max_batch_size=4)
        with pytest.raises(RuntimeError, match="0 results for 1 texts"):
            await batcher.submit(["x"])
        await batcher.close()

    asyncio.run(scenario())
