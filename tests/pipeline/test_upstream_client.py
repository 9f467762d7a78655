"""The upstream client's decisions over a fake transport: retries, fallbacks, timeouts,
what it records on the context. No sockets: the transport is the seam."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout
from gateway.proxy_response import ProxyResponse
from gateway.transport import AttemptFailed, UpstreamRequest
from gateway.upstream import UpstreamClient
from gateway.upstream_health import TargetHealth
from gateway.upstream_rules import Failure
from tests.pipeline.fakes import FakeTransport, answer, config, context

TWO_GROUPS = {
    "main": {"targets": [{"url": "http://a.test"}, {"url": "http://b.test"}],
             "circuit_breaker": {"failures": 1, "cooldown": 600}},
    "backup": {"targets": [{"url": "http://backup.test"}]},
}


def route(**extra: object) -> dict[str, object]:
    return {"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/v1",
            "public": True, **extra}


def client(transport: FakeTransport, health: TargetHealth | None = None,
           shadow_max_in_flight: int = 64) -> UpstreamClient:
    # rng 0.0: the first usable target by weight, always
    return UpstreamClient(health or TargetHealth(), transport, rng=lambda: 0.0,
                          shadow_max_in_flight=shadow_max_in_flight)


def test_a_503_is_retried_on_the_other_target_and_recorded(tmp_path: Path) -> None:
    cfg = config(tmp_path, [route(retry={"attempts": 2, "backoff": 0.001})], TWO_GROUPS)

    async def handle(request: UpstreamRequest) -> ProxyResponse:
        status = 503 if request.url.startswith("http://a.test") else 200
        return await answer(status)(request)

    transport = FakeTransport(handle)
    ctx = context(cfg, "/api/items")
    ctx.query = b"page=2"
    response = asyncio.run(client(transport).send(ctx, None))
    assert response.status == 200
    assert [r.url for r in transport.sent] == ["http://a.test/v1/items?page=2",
                                               "http://b.test/v1/items?page=2"]
    assert [(a.target, a.outcome) for a in ctx.attempts] == [
        ("http://a.test", "status"), ("http://b.test", "")]
    assert ctx.upstream_target == "http://b.test" and ctx.fallbacks == 0


def test_a_refused_connection_falls_back_to_the_next_group(tmp_path: Path) -> None:
    cfg = config(tmp_path, [route(fallbacks=["backup"])], TWO_GROUPS)

    async def handle(request: UpstreamRequest) -> ProxyResponse:
        if "backup" not in request.url:
            raise AttemptFailed(Failure("connect", UpstreamError(UpstreamError.CONNECT_FAILED)))
        return await answer(200, b"from backup")(request)

    transport = FakeTransport(handle)
    ctx = context(cfg, "/api/x", method="POST")
    response = asyncio.run(client(transport).send(ctx, b"{}"))
    assert response.body == b"from backup"
    assert ctx.fallbacks == 1
    assert [(a.group, a.outcome) for a in ctx.attempts] == [("main", "connect"),
                                                          ("backup", "")]
    assert transport.sent[-1].body == b"{}" and transport.sent[-1].method == "POST"


def test_a_timed_out_post_is_not_sent_again(tmp_path: Path) -> None:
    cfg = config(tmp_path, [route(retry={"attempts": 3, "backoff": 0.001}, fallbacks=["backup"],
                                  timeout={"connect": 0.5, "total": 7})], TWO_GROUPS)

    async def handle(request: UpstreamRequest) -> ProxyResponse:
        raise AttemptFailed(Failure("timeout", UpstreamTimeout(
            UpstreamTimeout.ANSWER.format(seconds=request.total_timeout))))

    transport = FakeTransport(handle)
    ctx = context(cfg, "/api/x", method="POST")
    with pytest.raises(UpstreamTimeout, match=r"no answer within 7\.0s"):
        asyncio.run(client(transport).send(ctx, b"{}"))
    assert len(transport.sent) == 1  # the upstream may have acted on it: never twice
    assert (transport.sent[0].connect_timeout, transport.sent[0].total_timeout) == (0.5, 7.0)


def test_no_usable_target_is_a_503_naming_the_group_without_a_send(tmp_path: Path) -> None:
    cfg = config(tmp_path, [route()], TWO_GROUPS)
    health = TargetHealth()
    for group in cfg.groups["main"].targets:
        health.record_failure(group.url, cfg.groups["main"].breaker)  # circuits open
    transport = FakeTransport(answer(200))
    with pytest.raises(ServiceUnavailable) as info:
        asyncio.run(client(transport, health).send(context(cfg, "/api/x"), None))
    assert info.value.detail == "no healthy upstream in group 'main'"
    assert int(info.value.headers["Retry-After"]) >= 1
    assert transport.sent == []


def test_shadow_copies_past_the_cap_are_counted_as_dropped(tmp_path: Path) -> None:
    cfg = config(tmp_path, [route(shadow={"upstream": "backup"})], TWO_GROUPS)
    transport = FakeTransport(answer(200))
    upstream = client(transport, shadow_max_in_flight=0)
    asyncio.run(upstream.send(context(cfg, "/api/x"), None))
    assert upstream.shadow_dropped == 1
    assert [r.url for r in transport.sent] == ["http://a.test/v1/x"]


def test_closing_the_client_closes_its_transport(tmp_path: Path) -> None:
    transport = FakeTransport(answer(200))
    asyncio.run(client(transport).close())
    assert transport.closed


def test_a_probe_cancelled_while_its_5xx_is_released_leaves_the_circuit_probeable(
        tmp_path: Path) -> None:
    # A client disconnect can cancel the request while the failed answer is drained: the
    # half-open probe must be given up, or the target stays out of service for good.
    solo = {"main": {"targets": [{"url": "http://a.test"}],
                     "circuit_breaker": {"failures": 1, "cooldown": 600}}}
    cfg = config(tmp_path, [route()], solo)
    now = [0.0]
    health = TargetHealth(clock=lambda: now[0])
    health.record_failure("http://a.test", cfg.groups["main"].breaker)  # circuit open
    now[0] += 601  # cool-down over: the next request is the probe
    releasing = asyncio.Event()

    async def release() -> None:
        releasing.set()
        await asyncio.Event().wait()  # drains until cancelled

    async def handle(request: UpstreamRequest) -> ProxyResponse:
        return ProxyResponse(500, [], body=b"", release=release)

    async def probe_and_cancel() -> None:
        task = asyncio.ensure_future(client(FakeTransport(handle), health).send(
            context(cfg, "/api/x"), None))
        await releasing.wait()
        assert not health.usable("http://a.test")  # the probe is in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(probe_and_cancel())
    assert health.usable("http://a.test")
