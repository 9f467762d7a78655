"""The soak bench (bench/soak.py) in its CI size: a short steady load of the full mix
(tenants, plain and cached routes, upstream errors, a tenant over its limit) on a real
gateway, Redis and upstream: every answer as its kind must be, memory flat after the
warm-up. The 30-minute run and its figures are in docs/operations.md."""

from __future__ import annotations

import pytest

from bench.soak import MAX_GROWTH, soak

pytestmark = pytest.mark.slow


def test_a_short_soak_answers_right_and_stays_flat():
    # Two minutes at the documented rate; the first half warms up (imports, pools, the
    # cache filling), growth is measured over the second.
    result = soak(seconds=120, rate=50, warmup=0.5)
    assert result["wrong"] == {}
    answers = result["answers"]
    assert isinstance(answers, dict)
    kinds = {kind for kind, _ in answers}
    assert kinds == {"plain", "cached", "broken", "limited"}  # the whole mix was sent
    assert ("limited", 429) in answers  # the tight tenant was refused, as it must be
    assert float(result["growth"]) < MAX_GROWTH  # type: ignore[arg-type]
