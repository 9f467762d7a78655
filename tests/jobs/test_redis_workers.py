"""Durability on real processes: a real Redis, `gateway serve` and `gateway worker`
processes, a real backend. A worker killed with SIGKILL mid-run, a gateway killed while
jobs wait, a worker stopped with SIGTERM while its jobs run: no job is lost, none is
completed twice. (bench/bench_jobs.py runs the kill at full size: 10,000 jobs.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway.stores.jobs_redis import GROUP, STREAM
from tests.jobs.conftest import write_job_setup
from tests.limits.conftest import TenantKeys
from tests.processes import GatewayProcess, RedisServer, stop_process
from tests.servers import Backend

pytestmark = pytest.mark.slow
JOBS = int(os.environ.get("JOBS_KILL_TEST", "400"))  # CI size; the bench runs 10,000


class WorkerProcess:
    """`python -m gateway worker` with the cluster's environment."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str):
        self.env = {**os.environ, **env}
        self.cwd, self.name = cwd, name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with (self.cwd / f"worker-{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "worker",
                                          "--concurrency", "16"], env=self.env, cwd=self.cwd,
                                         stdout=log, stderr=log)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no cleanup, its jobs stay pending in the stream
        self.proc.wait()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        stop_process(self.proc)


class Cluster:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis").start()
        self.backend = Backend("jobs").start()
        write_job_setup(workdir, self.backend.url)
        self.keys = TenantKeys()
        self.keys.write(["acme", "globex", "tiny"], workdir / "data", self.redis.url)
        self.started: list[GatewayProcess | WorkerProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {"GATEWAY_REDIS_URL": self.redis.url,
                "GATEWAY_ROUTES_FILE": str(self.workdir / "routes.yaml"),
                "GATEWAY_POLICIES_DIR": str(self.workdir / "policies"),
                "GATEWAY_DATA_DIR": str(self.workdir / "data"),
                "GATEWAY_ACCESS_LOG": "false",
                "GATEWAY_LOG_LEVEL": os.environ.get("JOBS_LOG", "warning"),
                "GATEWAY_JOBS_VISIBILITY_TIMEOUT": "1", **extra}

    def gateway(self) -> GatewayProcess:
        gw = GatewayProcess(self.env(), self.workdir).start()
        self.started.append(gw)
        return gw

    def worker(self, name: str, **env: str) -> WorkerProcess:
        w = WorkerProcess(self.env(**env), self.workdir, name).start()
        self.started.append(w)
        return w

    def stop(self) -> None:
        for p in self.started:  # all at once: each takes up to a second to stop cleanly
            if p.proc is not None and p.proc.poll() is None:
                p.proc.terminate()
        for p in self.started:
            p.stop()
        self.backend.stop()
        self.redis.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.stop()


async def submit(url: str, headers: dict[str, str], bodies: list[bytes], path: str,
                 concurrency: int = 32) -> list[str]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(body: bytes) -> str:
            async with gate:
                r = await client.post(path, content=body, headers={
                    **headers, "Prefer": "respond-async"})
                assert r.status_code == 202, r.text
                return str(r.json()["id"])
        return list(await asyncio.gather(*(one(b) for b in bodies)))


async def fetch(url: str, headers: dict[str, str], ids: list[str],
                concurrency: int = 32) -> list[dict]:
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(job_id: str) -> dict:
            async with gate:
                r = await client.get(f"/v1/jobs/{job_id}", headers=headers)
                assert r.status_code == 200, r.text
                return dict(r.json())
        return list(await asyncio.gather(*(one(i) for i in ids)))


def unfinished(redis_url: str, tenant: str = "acme") -> int:
    """Jobs of `tenant` queued or running, as the store counts them for its cap."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.zcard(f"gw:{{jobs}}:pending:{tenant}"))
    finally:
        client.close()


def held_by(redis_url: str, pid: int) -> int:
    """Jobs the worker process `pid` has taken and not finished (its consumer's share of
    the stream's pending entries; a consumer is named host-pid-random)."""
    client = redis.Redis.from_url(redis_url)
    try:
        summary = client.xpending(STREAM, GROUP)
    finally:
        client.close()
    return sum(int(c["pending"]) for c in summary.get("consumers") or []
               if f"-{pid}-" in c["name"].decode())


def wait_all_finished(cluster: Cluster, url: str, headers: dict[str, str], ids: list[str],
                      timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while unfinished(cluster.redis.url):
        assert time.monotonic() < deadline, f"{unfinished(cluster.redis.url)} left"
        time.sleep(0.1)
    return asyncio.run(fetch(url, headers, ids))


def test_a_worker_killed_mid_run_loses_no_job_and_none_completes_twice(cluster):
    gw = cluster.gateway()
    headers = cluster.keys.as_tenant("acme")
    bodies = [b'{"n": %d}' % i for i in range(JOBS)]
    t0 = time.monotonic()
    ids = asyncio.run(submit(gw.url, headers, bodies, "/v1/predict/slow?delay=0.02"))
    print(f"submitted in {time.monotonic() - t0:.1f}s")
    # All queued first, so that each worker runs its 16 executors full when one is killed.
    workers = [cluster.worker(str(i), GATEWAY_LOG_LEVEL="info") for i in range(3)]
    deadline = time.monotonic() + 30
    # Every worker up (one started late would hold nothing when killed), then mid-run.
    logs = [cluster.workdir / f"worker-{i}.log" for i in range(3)]
    while not all(log.exists() and b"job_worker_started" in log.read_bytes() for log in logs):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Mid-run (a quarter done), and the doomed worker holding jobs: on a loaded machine
    # the others can run a quarter before it has taken any.
    assert workers[0].proc is not None
    while (cluster.backend.hits["/slow"] < JOBS // 4
           or held_by(cluster.redis.url, workers[0].proc.pid) == 0):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    print(f"killing at {time.monotonic() - t0:.1f}s")
    workers[0].kill()
    workers[0] = cluster.worker("0-again")
    jobs = wait_all_finished(cluster, gw.url, headers, ids)
    print(f"all done at {time.monotonic() - t0:.1f}s")
    assert [j["status"] for j in jobs] == ["succeeded"] * JOBS
    for body, job in zip(bodies, jobs, strict=True):
        assert job["result"]["body"]["body"] == body.decode()  # its own input's answer
    calls = cluster.backend.hits["/slow"]
    retaken = sum(j["attempts"] > 1 for j in jobs)
    print(f"\n{JOBS} jobs, 3 workers, one SIGKILLed: {calls} upstream calls "
          f"({calls - JOBS} repeated), {retaken} jobs taken over")
    assert retaken >= 1  # the killed worker held jobs: they were taken over
    assert JOBS <= calls <= JOBS + 16 * 2  # at most its executors' jobs ran again
    # Exactly once from the client's view: one result each, and the gateway refused the
    # late ones (none can come from a killed process; so none refused here).
    assert len({j["id"] for j in jobs}) == JOBS


def test_a_gateway_killed_while_jobs_wait_loses_none(cluster):
    first = cluster.gateway()
    headers = cluster.keys.as_tenant("acme")
    bodies = [b'{"m": %d}' % i for i in range(40)]
    ids = asyncio.run(submit(first.url, headers, bodies, "/v1/predict/echo"))
    assert first.proc is not None
    first.proc.kill()  # no worker ran yet: all 40 wait in Redis
    first.proc.wait()
    second = cluster.gateway()
    queued = httpx.get(second.url + "/v1/jobs?status=queued&limit=100", headers=headers)
    assert len(queued.json()["jobs"]) == 40
    cluster.worker("late")
    jobs = wait_all_finished(cluster, second.url, headers, ids)
    assert [j["result"]["body"]["body"] for j in jobs] == [b.decode() for b in bodies]


def test_sigterm_hands_running_jobs_back_and_another_worker_finishes_them(cluster):
    gw = cluster.gateway()
    headers = cluster.keys.as_tenant("acme")
    # A long visibility timeout: only a hand-back can explain a quick takeover.
    leaving = cluster.worker("leaving", GATEWAY_JOBS_SHUTDOWN_GRACE="0.2",
                             GATEWAY_JOBS_VISIBILITY_TIMEOUT="60")
    ids = asyncio.run(submit(gw.url, headers, [b"{}"] * 4, "/v1/predict/slow?delay=1.5"))
    deadline = time.monotonic() + 15
    while cluster.backend.hits["/slow"] < 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert leaving.terminate() == 0
    started = time.monotonic()
    cluster.worker("staying", GATEWAY_JOBS_VISIBILITY_TIMEOUT="60")
    jobs = wait_all_finished(cluster, gw.url, headers, ids, timeout=20)
    assert time.monotonic() - started < 15
    assert [j["status"] for j in jobs] == ["succeeded"] * 4
    assert [j["attempts"] for j in jobs] == [1] * 4  # a hand-back is not a lost attempt
    assert cluster.backend.hits["/slow"] == 8  # the cut-off runs, then the real ones
