"""Alert rules checked and unit-tested by promtool; dashboards in step with their generator
and with the metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

from gateway.metrics import GatewayMetrics
from ml_services.metrics import ServiceMetrics
from tests.observability.stack import ALERTS_FILE, DASHBOARDS_DIR, ROOT
from tests.observability.test_dashboards import dashboard_exprs, rule_exprs

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
# The panels the issue asks for, in order.
GATEWAY_PANELS = [
    "Requests/s", "Error rate %", "Latency p50 / p95 / p99 by route", "4xx / 5xx",
    "429s by tenant", "Cache hit ratio", "Upstream latency",
    "Upstream errors, retries, fallbacks", "Circuit state", "In-flight requests",
    "Config reload failures", "LLM tokens/s by model", "LLM spend by tenant (per hour)",
    "LLM budget burn rate", "Job queue depth", "Jobs/s",
    "Job latency", "Job webhooks",
]
INFERENCE_PANELS = ["Texts/s", "Inference latency", "Batch size", "Texts/s by model version",
                    "Inference p99 by model version", "Drift PSI: $task",
                    "Drift window and reference"]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool not found on PATH: apt-get install prometheus"
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=PROMETHEUS_DIR,
                          timeout=60)


def test_rules_and_config_pass_promtool() -> None:
    checked = promtool("check", "rules", str(ALERTS_FILE))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_alert_rules_fire_as_specified() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "alerts_test.yml")
                            .read_text()))
    alerts = {name.split("/", 1)[1] for name, _, _ in rule_exprs() if name.startswith("alert/")}
    assert alerts == tested  # every alert has a unit test
    assert alerts >= {"GatewayRouteErrorRateHigh", "GatewayRouteLatencyP99High",
                      "GatewayUpstreamDown", "RateLimitStoreDegraded",
                      "GatewayTenantBudgetBurnHigh", "MlDriftHigh"}


def test_dashboards_are_generated_from_the_committed_generator() -> None:
    result = subprocess.run([sys.executable, str(DASHBOARDS_DIR / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    titles = {}
    for path in DASHBOARDS_DIR.glob("*.json"):
        doc = json.loads(path.read_text())
        titles[doc["title"]] = [p["title"] for p in doc["panels"]]
        assert all(t["datasource"]["uid"] == "prometheus" for p in doc["panels"]
                   for t in p["targets"])
    assert titles == {"Gateway overview": GATEWAY_PANELS,
                      "Inference services": INFERENCE_PANELS}


def test_every_metric_named_in_panels_and_rules_exists() -> None:
    known = set()
    for registry in (GatewayMetrics().registry, ServiceMetrics().registry):
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "gauge": [""],
                        "histogram": ["_bucket", "_sum", "_count"],
                        "info": ["_info"]}[family.type]
            known |= {family.name + suffix for suffix in suffixes}
    known |= {"up"}
    recorded = {name.split("/", 1)[1] for name, _, _ in rule_exprs()
                if name.startswith("record/")}
    exprs = [e for _, e in dashboard_exprs()] + [e for _, e, _ in rule_exprs()]
    for expr in exprs:
        # Metric names: identifiers followed by a selector or range, not functions.
        for name in re.findall(r"([a-z_:][a-z0-9_:]*)\s*(?=\{|\[|\s*[<>)]|$)", expr):
            if name.startswith(("gateway_", "ml_")) or ":" in name:
                assert name in known or name in recorded, f"{name} in {expr}"
