"""Label sets stay bounded whatever clients send: paths, keys, request ids, methods."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import write_routes
from tests.observability.stack import scrape
from tests.servers import Backend


def test_series_do_not_grow_with_distinct_paths_and_keys(
        tmp_path: Path, backend: Backend, start_gateway: Callable[..., Any]) -> None:
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": backend.url}]}},
                 [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main",
                   "rewrite": "/"}])
    gw = start_gateway()
    metrics = gw.app.metrics
    client: httpx.Client = gw.client

    def unknown_path(i: int) -> None:
        assert client.get(f"/unknown/{i}/gw_k{i}_s{i}",
                          headers={"X-Request-ID": f"req-{i}"}).status_code == 404

    def bogus_key(i: int) -> None:
        r = client.get(f"/api/items/{i}", headers={
            "Authorization": f"Bearer gw_bogus{i}_secret{i}", "X-API-Key": f"gw_bogus{i}_secret{i}",
            "X-Request-ID": f"key-{i}"})
        assert r.status_code == 401  # counted under route "api", never by key

    unknown_path(-1)
    bogus_key(-1)
    scrape(gw.url)  # the scrape's own series (route "control") exist from here on
    before = scrape(gw.url)
    children = metrics.series_count
    for i in range(1000):
        unknown_path(i)
        bogus_key(i)
    after = scrape(gw.url)

    assert set(after) == set(before), sorted(set(after) ^ set(before))[:10]
    # Nor do the cached label children (memory) grow.
    assert metrics.series_count == children
    labels = {v for _, ls in after for _, v in ls}
    assert not any("unknown/" in v or "gw_" in v or "req-" in v or "key-" in v
                   for v in labels)
    total = sum(v for (name, ls), v in after.items() if name == "gateway_requests_total"
                and ("route", "unmatched") in ls)
    assert total == 1001
