"""Pure upstream decisions: weighted choice, retry and fallback rules, header rules."""

from __future__ import annotations

import random

import pytest

from gateway.config.models import CircuitBreaker, Target, UpstreamGroup
from gateway.config.runtime import RetryPlan, compile_group
from gateway.context import Principal, RequestContext
from gateway.errors import UpstreamError
from gateway.upstream_health import TargetHealth
from gateway.upstream_rules import (
    Failure,
    answer_headers,
    backoff_delay,
    choose_target,
    forward_headers,
    may_fall_back,
    may_retry,
)


def group(*weights: int):
    spec = UpstreamGroup(targets=[Target(url=f"http://10.0.0.{i}:80", weight=w)
                                  for i, w in enumerate(weights)])
    return compile_group("g", spec)


def always(_: str) -> bool:
    return True


@pytest.mark.parametrize("weights", [(90, 10), (50, 30, 20), (1, 1), (99, 1)])
def test_weights_split_within_two_percent_over_10000_picks(weights):
    g = group(*weights)
    rng = random.Random(1234)
    counts = {t.url: 0 for t in g.targets}
    for _ in range(10_000):
        counts[choose_target(g, always, rng.random()).url] += 1
    total = sum(weights)
    for t in g.targets:
        assert abs(counts[t.url] / 10_000 - t.weight / total) <= 0.02, counts


def test_choice_skips_unusable_and_zero_weight_targets():
    g = group(90, 10, 0)
    down = g.targets[0].url
    picks = {choose_target(g, lambda u: u != down, r / 100).url for r in range(100)}
    assert picks == {g.targets[1].url}
    assert choose_target(g, lambda u: False, 0.5) is None
    # `avoid` steers a retry to another target while one remains.
    assert choose_target(g, always, 0.0, avoid=g.targets[0].url) == g.targets[1]


PLAN = RetryPlan(attempts=2, backoff=0.1, max_backoff=1.0, on_status=frozenset({503}),
                 methods=frozenset({"GET"}))
ERR = UpstreamError("x")


@pytest.mark.parametrize(
    ("method", "attempt", "failure", "expected"),
    [
        ("GET", 0, Failure("timeout", ERR), True),
        ("GET", 0, Failure("reset", ERR), True),
        ("GET", 0, Failure("status", ERR, 503), True),
        ("GET", 0, Failure("status", ERR, 500), False),  # not listed
        ("GET", 2, Failure("timeout", ERR), False),  # budget spent
        ("POST", 0, Failure("timeout", ERR), False),  # not idempotent, not allowed
        ("POST", 0, Failure("status", ERR, 503), False),
        ("POST", 0, Failure("connect", ERR), True),  # the request never left
        ("GET", 0, Failure("unavailable", ERR), False),  # no target to retry on
    ],
)
def test_may_retry(method, attempt, failure, expected):
    assert may_retry(PLAN, method, attempt, failure) is expected


def test_may_fall_back():
    assert may_fall_back(PLAN, "POST", Failure("connect", ERR))
    assert may_fall_back(PLAN, "POST", Failure("unavailable", ERR))
    assert not may_fall_back(PLAN, "POST", Failure("timeout", ERR))
    assert may_fall_back(PLAN, "GET", Failure("timeout", ERR))


def test_backoff_is_exponential_capped_and_jittered():
    assert backoff_delay(PLAN, 0, 1.0) == pytest.approx(0.1)
    assert backoff_delay(PLAN, 3, 1.0) == pytest.approx(0.8)
    assert backoff_delay(PLAN, 10, 1.0) == pytest.approx(1.0)
    assert backoff_delay(PLAN, 3, 0.5) == pytest.approx(0.4)


def make_ctx(headers, principal=None):
    return RequestContext(
        request_id="rid-1", config=None, route=None, path_params={}, method="GET",  # type: ignore[arg-type]
        path="/x", query=b"", headers=headers, client_ip="192.0.2.7", started=0.0,
        principal=principal,
    )


def test_forward_headers_rules():
    ctx = make_ctx([
        (b"authorization", b"Bearer secret"), (b"x-api-key", b"k"), (b"cookie", b"a=b"),
        (b"connection", b"close, x-hop"), (b"x-hop", b"1"), (b"te", b"trailers"),
        (b"x-tenant-id", b"evil"), (b"content-type", b"application/json"),
        (b"x-forwarded-for", b"198.51.100.1"), (b"host", b"gw"),
    ], Principal("acme", "key1", "api_key"))
    out = dict(forward_headers(ctx, b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"))
    assert out == {
        "content-type": "application/json",
        "X-Request-ID": "rid-1",
        "X-Forwarded-For": "198.51.100.1, 192.0.2.7",
        "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "X-Tenant-ID": "acme",
    }


def test_answer_headers_drop_hop_by_hop():
    raw = ((b"content-type", b"a/b"), (b"transfer-encoding", b"chunked"),
           (b"connection", b"keep-alive"), (b"server", b"x"), (b"x-model", b"v2"))
    assert answer_headers(raw) == [(b"content-type", b"a/b"), (b"x-model", b"v2")]


def test_answer_headers_drop_what_any_connection_field_names():
    raw = ((b"connection", b"keep-alive"), (b"x-hop", b"1"), (b"x-model", b"v2"),
           (b"connection", b" X-Hop ,close"), (b"x-hop", b"2"))
    assert answer_headers(raw) == [(b"x-model", b"v2")]


def test_circuit_opens_after_failures_then_single_probe():
    now = [100.0]
    health = TargetHealth(clock=lambda: now[0])
    breaker = CircuitBreaker(failures=3, cooldown=5)
    url = "http://t"
    for _ in range(2):
        health.record_failure(url, breaker)
    assert health.usable(url) and health.circuit_state(url) == "closed"
    health.record_failure(url, breaker)
    assert not health.usable(url) and health.circuit_state(url) == "open"
    now[0] += 5
    assert health.usable(url) and health.circuit_state(url) == "half_open"
    health.begin(url)  # this request is the probe
    assert not health.usable(url)  # only one probe at a time
    health.record_failure(url, breaker)  # probe failed: open again
    assert not health.usable(url)
    now[0] += 5
    health.begin(url)
    health.record_success(url)
    assert health.usable(url) and health.circuit_state(url) == "closed"
