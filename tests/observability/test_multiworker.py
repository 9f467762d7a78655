"""`gateway serve --workers 2`: one scrape, whichever worker answers it, counts both."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.conftest import write_routes
from tests.observability.stack import scrape, value
from tests.processes import GatewayProcess
from tests.servers import Backend

REQUESTS = 200


def worker_pids(metrics_dir: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}


def requests_by_worker(metrics_dir: Path) -> dict[int, float]:
    """Each worker's own count of route "api" requests, read from its own file."""
    out = {}
    for pid in worker_pids(metrics_dir):
        families = MultiProcessCollector.merge(  # type: ignore[no-untyped-call]
            [str(metrics_dir / f"counter_{pid}.db")], accumulate=False)
        out[pid] = sum(s.value for f in families for s in f.samples
                       if s.name == "gateway_requests_total" and s.labels["route"] == "api")
    return out


def test_two_workers_give_one_view(tmp_path: Path, backend: Backend) -> None:
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": backend.url}]}},
                 [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main",
                   "rewrite": "/slow", "public": True}])  # the subject is workers, not auth
    metrics_dir = tmp_path / "metrics"
    gw = GatewayProcess({"GATEWAY_WORKERS": "2", "GATEWAY_ACCESS_LOG": "false",
                         "GATEWAY_DATA_DIR": str(tmp_path / "data"),  # signing keys
                         "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, tmp_path).start()
    try:
        deadline = time.monotonic() + 20
        while len(worker_pids(metrics_dir)) < 2:  # both workers have built their app
            assert time.monotonic() < deadline, "the second worker did not start"
            time.sleep(0.05)

        def call(i: int) -> int:
            # A new connection each time, so the kernel spreads them over both workers.
            return httpx.get(f"{gw.url}/api?delay=0.02", timeout=10,
                             headers={"Connection": "close"}).status_code

        with ThreadPoolExecutor(16) as pool:
            assert set(pool.map(call, range(REQUESTS))) == {200}

        # Each worker folds its tally into the shared files once a second.
        deadline = time.monotonic() + 5
        while sum((by_worker := requests_by_worker(metrics_dir)).values()) < REQUESTS:
            assert time.monotonic() < deadline, by_worker
            time.sleep(0.1)
        assert len(by_worker) == 2 and all(n > 0 for n in by_worker.values()), by_worker
        assert sum(by_worker.values()) == REQUESTS
        for _ in range(6):  # scrapes land on either worker; every one sums both
            m = scrape(gw.url)
            assert value(m, "gateway_requests_total", route="api") == REQUESTS
            assert value(m, "gateway_request_duration_seconds_count", route="api") == REQUESTS
            assert value(m, "gateway_requests_in_flight") == 0
    finally:
        gw.stop()
    # Stopped workers take their live gauges along; the operator's dir is kept.
    assert not list(metrics_dir.glob("gauge_live*.db"))
    assert os.path.isdir(metrics_dir)


def test_serve_prepares_an_empty_metrics_dir(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.metrics_multiproc import (
        MULTIPROC_ENV,
        prepare_multiprocess_dir,
        remove_multiprocess_dir,
    )

    # Recorded first, so teardown removes what prepare_multiprocess_dir sets.
    monkeypatch.setenv(MULTIPROC_ENV, "")
    monkeypatch.delenv(MULTIPROC_ENV)
    path, made = prepare_multiprocess_dir()
    assert made and os.environ[MULTIPROC_ENV] == path and not os.listdir(path)
    remove_multiprocess_dir(path)
    assert not os.path.exists(path)
    # An operator's own dir: kept, but values of an earlier run are wiped.
    own = tmp_path / "own"
    own.mkdir()
    (own / "counter_123.db").write_bytes(b"old")
    monkeypatch.setenv(MULTIPROC_ENV, str(own))
    assert prepare_multiprocess_dir() == (str(own), False)
    assert not list(own.iterdir())
