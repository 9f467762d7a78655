"""Real processes and scrape helpers for the observability tests.

`PrometheusServer` is Debian's `prometheus` binary (scripts/test.sh installs it where it
is missing) on a free loopback port with its storage in a temp dir; `ServiceProcess` is
one bundled inference service started by its own command.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import stop_process, wait_http
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
ALERTS_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS_DIR = ROOT / "dashboards"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of a /metrics answer, keyed by (name, label set)."""
    r = httpx.get(url + "/metrics", timeout=10, headers={"Connection": "close"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


class ServiceProcess:
    """`python -m ml_services.<name> --port P`, as docker-compose and `gateway dev` run it."""

    def __init__(self, module: str, cwd: Path):
        self.module = module
        self.port = free_port()
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        with (self.cwd / f"{self.module}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "--host", "127.0.0.1", "--port",
                 str(self.port)], cwd=ROOT, stdout=log, stderr=log,
                # ml_drift_psi from the first text on (the stack sends only a few).
                env={**os.environ, "ML_SENTIMENT_DRIFT_MIN_TEXTS": "1",
                     "ML_CLASSIFY_DRIFT_MIN_TEXTS": "1"})
        return self

    def wait(self) -> ServiceProcess:
        wait_http(self.url + "/readyz", timeout=60, proc=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class PrometheusServer:
    """A private Prometheus: 1 s scrapes and rule evaluations, the gateway's alert rules."""

    def __init__(self, workdir: Path, scrape_targets: list[tuple[str, str]]):
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found on PATH: apt-get install prometheus")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.scrape_targets = scrape_targets
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS_FILE)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [url.split("://", 1)[1]]}]}
                for job, url in self.scrape_targets
            ],
        }

    def start(self) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config()))
        with (self.workdir / "prometheus.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={config}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=log, cwd=self.workdir)
        wait_http(self.url + "/-/ready", timeout=30, proc=self.proc)
        return self

    def wait_until_scraping(self, timeout: float = 30.0) -> None:
        """Until every target has been scraped once (service discovery takes ~5 s)."""
        deadline = time.monotonic() + timeout
        while True:
            targets = self.api("targets")["activeTargets"]
            if len(targets) == len(self.scrape_targets) and all(
                    t["health"] == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus is not scraping every target: {targets}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def api(self, path: str, **params: str) -> Any:
        r = httpx.get(self.url + "/api/v1/" + path, params=params, timeout=10)
        body = r.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; raises AssertionError naming the expression if it is invalid."""
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (
            f"invalid PromQL: {expr}\n{body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if has_numbers(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.25)


def has_numbers(result: list[dict[str, Any]]) -> bool:
    """At least one series with a real number (not NaN: a quantile of no traffic)."""
    return any(not math.isnan(float(s["value"][1])) for s in result)
