"""Generate the Grafana dashboards of this directory from the panel lists below.

    python dashboards/generate.py          # rewrite gateway-overview.json, inference-services.json
    python dashboards/generate.py --check  # exit 1 if the committed JSON is out of date

Dashboards are code so that every PromQL expression is in one reviewable list: the tests
(tests/observability/) read the generated JSON back, run every expression against a
real Prometheus scraping a real gateway, and fail if one is invalid or returns nothing.
Plain dicts, no dashboards-as-code dependency: the JSON model used here (schemaVersion 39)
is small, and Grafana upgrades older models on load.

Grafana variables in expressions: `$route` (a multi-value route filter) and
`$__rate_interval`; the tests substitute `.*` and a window for them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # provisioning/datasources
W = "$__rate_interval"
R = 'route=~"$route"'


def _rate(metric: str, selector: str = "", by: str = "") -> str:
    sel = "{" + selector + "}" if selector else ""
    inner = f"rate({metric}{sel}[{W}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def _quantile(q: float, metric: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, {_rate(metric + '_bucket', selector, by + ', le')})"


@dataclass
class Panel:
    """One panel: title, (expression, legend) targets, unit, and how to draw it."""

    title: str
    targets: list[tuple[str, str]]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    mappings: list[dict[str, Any]] = field(default_factory=list)
    repeat: str = ""  # a dashboard variable: one copy of the panel per value


_CIRCUIT_MAPPINGS = [{"type": "value", "options": {
    "0": {"text": "closed", "color": "green", "index": 0},
    "1": {"text": "half-open", "color": "yellow", "index": 1},
    "2": {"text": "open", "color": "red", "index": 2},
}}]

_ALL_REQUESTS = _rate("gateway_requests_total", R, "route")
# `or 0 * all`: a route with no 5xx yet shows 0 %, not nothing.
_5XX = _rate("gateway_requests_total", R + ',status_class="5xx"', "route")
_HITS = _rate("gateway_cache_requests_total", R + ',result="hit"', "route")
_LOOKUPS = _rate("gateway_cache_requests_total", R, "route")

GATEWAY_OVERVIEW = [
    Panel("Requests/s", [(_ALL_REQUESTS, "{{route}}")], "reqps",
          description="Finished requests per second, by route."),
    Panel("Error rate %", [(
        f"100 * ({_5XX} or 0 * {_ALL_REQUESTS}) / {_ALL_REQUESTS}", "{{route}}")], "percent",
        description="Share of answers that are 5xx (the gateway's or an upstream's fault)."),
    Panel("Latency p50 / p95 / p99 by route", [
        (_quantile(q, "gateway_request_duration_seconds", "route", R), f"p{int(q * 100)} "
         "{{route}}") for q in (0.5, 0.95, 0.99)], "s"),
    Panel("4xx / 5xx", [(_rate("gateway_requests_total", R + ',status_class=~"4xx|5xx"',
                               "route, status_class"), "{{status_class}} {{route}}")],
          "reqps", description="Client errors (4xx) apart from server errors (5xx)."),
    Panel("429s by tenant", [(_rate("gateway_rate_limited_total", R, "tenant"),
                              "{{tenant}}")], "reqps",
          description="Refusals by rate limits and concurrency caps; `unknown` is anyone "
                      "not in policies/tenants.yaml."),
    Panel("Cache hit ratio", [(
        f"{_HITS} / {_LOOKUPS}", "{{route}}")], "percentunit",
        description="Hits over all lookups (hits, misses, bypasses) on cached routes."),
    Panel("Upstream latency", [
        (_quantile(q, "gateway_upstream_request_duration_seconds", "upstream, target", R),
         f"p{int(q * 100)} " + "{{target}}") for q in (0.5, 0.99)], "s",
        description="One attempt, until the answer's head."),
    Panel("Upstream errors, retries, fallbacks", [
        (_rate("gateway_upstream_errors_total", R, "target, kind"), "{{kind}} {{target}}"),
        (_rate("gateway_upstream_retries_total", R, "target"), "retried {{target}}"),
        (_rate("gateway_upstream_fallbacks_total", R, "upstream"), "fell back to {{upstream}}"),
    ], "reqps"),
    Panel("Circuit state", [("max by (upstream, target) (gateway_upstream_circuit_state)",
                             "{{upstream}} {{target}}")], kind="state-timeline",
          mappings=_CIRCUIT_MAPPINGS, description="Worst state across gateway processes."),
    Panel("In-flight requests", [("sum by (instance) (gateway_requests_in_flight)",
                                  "{{instance}}")]),
    Panel("Config reload failures", [(
        f'sum by (instance) (increase(gateway_config_reloads_total{{result="failure"}}[{W}]))',
        "{{instance}}")], kind="timeseries",
        description="A refused reload keeps the last good config: read the gateway's log "
                    "(event config_reload_refused) for file, line and field."),
    Panel("LLM tokens/s by model", [(
        _rate("gateway_llm_tokens_total", R, "model, kind"), "{{kind}} {{model}}")],
        description="Tokens the upstreams reported (usage), prompt apart from completion "
                    "(docs/llm.md)."),
    Panel("LLM spend by tenant (per hour)", [(
        "3600 * " + _rate("gateway_llm_spend_total", R, "tenant"), "{{tenant}}")],
        description="Currency units per hour at the current pace, by the models' price "
                    "table."),
    Panel("LLM budget burn rate", [(
        f"{_rate('gateway_llm_spend_total', '', 'tenant')} / on (tenant) "
        "min by (tenant) (gateway_llm_budget_per_second)", "{{tenant}}")],
        description="Spend as a multiple of the tenant's budget pace: 1 spends the budget "
                    "exactly in its window; the alert fires above 2 for 15 minutes."),
    Panel("Job queue depth", [("max by (state) (gateway_jobs_queue_depth)", "{{state}}")],
          description="Jobs waiting for a worker (queued) and being run (running); with "
                      "Redis every gateway and worker reports the same queue."),
    Panel("Jobs/s", [
        (_rate("gateway_jobs_submitted_total", R, "route"), "submitted {{route}}"),
        (_rate("gateway_jobs_finished_total", R, "route, status"), "{{status}} {{route}}"),
    ], "reqps", description="Accepted (202) and finished jobs."),
    Panel("Job latency", [
        *((_quantile(q, "gateway_job_duration_seconds", "route", R),
           f"p{int(q * 100)} submitted → done " + "{{route}}") for q in (0.5, 0.99)),
        (_quantile(0.99, "gateway_job_queue_wait_seconds", "route", R),
         "p99 queue wait {{route}}"),
    ], "s", description="From submission to the outcome written, and the part spent "
                        "waiting for a worker."),
    Panel("Job webhooks", [(_rate("gateway_job_webhooks_total", "", "result"),
                            "{{result}}")], "reqps",
          description="Deliveries by result; `dead` ones are dead-lettered: "
                      "GET /v1/jobs?webhook=dead lists them."),
]

INFERENCE_SERVICES = [
    Panel("Texts/s", [(_rate("ml_texts_processed_total", "", "job, task"),
                       "{{job}} {{task}}")], "short"),
    Panel("Inference latency", [
        (_quantile(q, "ml_inference_seconds", "job, task"), f"p{int(q * 100)} "
         "{{job}} {{task}}") for q in (0.5, 0.99)], "s",
        description="One model call (one batch)."),
    Panel("Batch size", [
        (f"{_rate('ml_batch_size_texts_sum', '', 'job, task')} / "
         f"{_rate('ml_batch_size_texts_count', '', 'job, task')}", "mean {{job}} {{task}}"),
        (_quantile(0.99, "ml_batch_size_texts", "job, task"), "p99 {{job}} {{task}}"),
    ], "short", description="Texts per model call: micro-batching at work."),
    # Canary comparison: every ml_* series split by the version its instance serves
    # (ml_model_info, joined on instance and task).
    Panel("Texts/s by model version", [(
        f"sum by (task, name, version) (rate(ml_texts_processed_total[{W}]) "
        f"* on (instance, task) group_left (name, version) ml_model_info)",
        "{{task}} {{name}} {{version}}")], "short",
        description="A canary (a second instance with another version) beside the stable one."),
    Panel("Inference p99 by model version", [(
        f"histogram_quantile(0.99, sum by (task, version, le) "
        f"(rate(ml_inference_seconds_bucket[{W}]) "
        f"* on (instance, task) group_left (version) ml_model_info))",
        "p99 {{task}} {{version}}")], "s",
        description="One model call, by the version that served it."),
    # Drift (ml_services/drift.py): one panel per model (Grafana repeats it for each value
    # of $task), a line per feature; the MlDriftHigh alert fires above 0.2 for 15 minutes.
    Panel("Drift PSI: $task", [(
        'max by (job, task, feature) (ml_drift_psi{task=~"$task"})', "{{feature}} {{job}}")],
        "short", repeat="task",
        description="PSI of the model's sliding window against its reference, per feature "
                    "(length, oov, centroid, label); above 0.2 is a significant shift "
                    "(docs/drift.md)."),
    Panel("Drift window and reference", [
        ("max by (job, task) (ml_drift_window_texts)", "window {{task}}"),
        ("max by (task, source) (ml_drift_reference_texts)",
         "reference {{task}} ({{source}})")], "short",
        description="Texts in each sliding window, and in its reference: bundled (the "
                    "shipped file) or first_requests (learned after start-up)."),
]


def _panel_json(panel: Panel, index: int) -> dict[str, Any]:
    width = 12
    return {
        "id": index + 1,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": width, "x": (index % 2) * width, "y": (index // 2) * 8},
        "fieldConfig": {"defaults": {"unit": panel.unit, "mappings": panel.mappings},
                        "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
             "legendFormat": legend}
            for i, (expr, legend) in enumerate(panel.targets)
        ],
        **({"repeat": panel.repeat, "repeatDirection": "h", "maxPerRow": 2}
           if panel.repeat else {}),
    }


def _variable(name: str, label: str, metric: str) -> dict[str, Any]:
    """A multi-value query variable over `metric`'s label `name`, All by default."""
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": f"label_values({metric}, {name})", "refId": name},
        "definition": f"label_values({metric}, {name})",
        "multi": True, "includeAll": True, "allValue": ".*", "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard(uid: str, title: str, panels: list[Panel], route_filter: bool,
              task_filter: bool = False) -> dict[str, Any]:
    variables = []
    if task_filter:
        variables.append(_variable("task", "Model (task)", "ml_drift_psi"))
    if route_filter:
        variables.append({
            "name": "route", "label": "Route", "type": "query", "datasource": DATASOURCE,
            "query": {"query": "label_values(gateway_requests_total, route)",
                      "refId": "routes"},
            "definition": "label_values(gateway_requests_total, route)",
            "multi": True, "includeAll": True, "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"},
        })
    return {
        "uid": uid, "title": title, "tags": ["ai-gateway"], "editable": True,
        "schemaVersion": 39, "version": 1, "refresh": "10s", "timezone": "",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": [_panel_json(p, i) for i, p in enumerate(panels)],
    }


DASHBOARDS = {
    "gateway-overview.json": dashboard("gateway-overview", "Gateway overview",
                                       GATEWAY_OVERVIEW, route_filter=True),
    "inference-services.json": dashboard("inference-services", "Inference services",
                                         INFERENCE_SERVICES, route_filter=False,
                                         task_filter=True),
}


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, doc in DASHBOARDS.items():
        path = HERE / name
        text = render(doc)
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date (run python dashboards/generate.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
