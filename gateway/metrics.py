"""Every Prometheus collector of the gateway, defined once, and the `/metrics` endpoint.

The only per-request call into this module is the access-log middleware's: it hands
each finished request (its `RequestContext`, status and duration) to
`GatewayMetrics.observe_request`, which derives every request-side metric from what the
pipeline left on the context's typed fields: the route, the principal, `cache_status`,
the upstream `attempts` and `fallbacks`. State-side gauges (circuits, store health,
dropped shadow copies) are read from the `StateSources` given at construction, by
`run_refresher` once a second and at every scrape.

Per-request observations go to plain ints and floats first (`gateway.metrics_tally`)
and are folded into the collectors once a second and before every render. A scrape of
this process is always exact; in multiprocess mode another worker's values are one fold
old at most: about a second, two when its PING of Redis waits out its timeout.

Labels are bounded by construction: routes and upstreams come from the config, tenants
from `policies/` (anything else is `unknown`), methods from a fixed list; never a raw
path, key or request id. Label children are cached by label tuple, so a request costs a
few dict lookups and increments.

Several worker processes (`gateway serve --workers N`) use prometheus-client's
multiprocess mode: the CLI points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
the workers start; each worker writes its values to memory-mapped files there, and a
scrape of any worker sums them (gauges: see each one's `multiprocess_mode`); the
directory's care is `gateway.metrics_multiproc`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from gateway.config.models import HTTP_METHODS
from gateway.config.runtime import ConfigHolder
from gateway.context import RequestContext
from gateway.errors import ConfigError
from gateway.metrics_multiproc import MULTIPROC_ENV
from gateway.metrics_tally import PendingCount, PendingHistogram, Tally
from gateway.upstream_health import TargetHealth

if TYPE_CHECKING:
    from gateway.stores.breaker import StoreBreaker
    from gateway.upstream import UpstreamClient

log = structlog.get_logger("gateway.metrics")
# From sub-millisecond cache hits and refusals to the slowest inference answers.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0)
UNKNOWN = "unknown"      # tenant label of anyone not in policies/tenants.yaml
UNMATCHED = "unmatched"  # route label of requests no route matched (404, 405)
CONTROL = "control"      # route label of the gateway's own (reserved) paths
# Jobs wait and run for seconds to hours.
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
               300.0, 900.0, 3600.0)
JOB_RESULTS = ("succeeded", "failed")
WEBHOOK_RESULTS = ("delivered", "retried", "dead")
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}
CACHE_RESULTS = frozenset({"HIT", "HIT-SEMANTIC", "MISS", "BYPASS"})
REFRESH_INTERVAL = 1.0  # seconds between state-gauge refreshes
_METHODS = frozenset(HTTP_METHODS)
# `*_created` timestamps would double the series count for no dashboard's benefit.
disable_created_metrics()  # type: ignore[no-untyped-call]
_STATUS_CLASSES = {c: f"{c}xx" for c in range(1, 6)}


@dataclass(frozen=True, slots=True)
class StateSources:
    """Where the state-side metrics come from (`create_app` builds one)."""

    holder: ConfigHolder
    health: TargetHealth
    store: StoreBreaker | None = None  # its degraded, degraded_seconds_total
    upstream: UpstreamClient | None = None  # its shadow_dropped
    ping: Callable[[], Awaitable[Any]] | None = None  # the shared store's PING, if any
    jobs_depth: Callable[[], Awaitable[tuple[int, int]]] | None = None  # (queued, running)


def _tenant(ctx: RequestContext) -> str:
    principal = ctx.principal
    return (principal.tenant_id if principal is not None
            and principal.tenant_id in ctx.config.tenants else UNKNOWN)


class GatewayMetrics:
    """The gateway's collectors in their own registry: one per app, so tests can run
    several apps in one process; in production there is one app per process.
    Without `sources` only the request-side metrics exist (the unit tests' case)."""

    def __init__(self, enabled: bool = True, sources: StateSources | None = None) -> None:
        self.enabled = enabled
        self.sources = sources
        self.registry = r = CollectorRegistry(auto_describe=True)
        route = ["route"]
        upstream = ["route", "upstream", "target"]
        self.requests = Counter(
            "gateway_requests", "Finished requests.", ["route", "method", "status_class"],
            registry=r)
        self.duration = Histogram(
            "gateway_request_duration_seconds", "Time from request to the answer's end.",
            route, buckets=DURATION_BUCKETS, registry=r)
        self.in_flight = Gauge(
            "gateway_requests_in_flight", "Requests being handled.", registry=r,
            multiprocess_mode="livesum")
        self.upstream_duration = Histogram(
            "gateway_upstream_request_duration_seconds",
            "One upstream attempt, until the answer's head (or whole buffered body).",
            upstream, buckets=DURATION_BUCKETS, registry=r)
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "Failed upstream attempts by kind "
            "(connect, timeout, reset, status).", [*upstream, "kind"], registry=r)
        self.upstream_retries = Counter(
            "gateway_upstream_retries", "Attempts retried after this target failed.",
            upstream, registry=r)
        self.upstream_fallbacks = Counter(
            "gateway_upstream_fallbacks", "Requests moved on to this fallback group.",
            ["route", "upstream"], registry=r)
        self.circuit_state = Gauge(
            "gateway_upstream_circuit_state", "Circuit of a target: 0 closed, 1 half-open, "
            "2 open (worst across workers).", ["upstream", "target"], registry=r,
            multiprocess_mode="livemax")
        self.upstream_up = Gauge(
            "gateway_upstream_up", "1 if the target takes traffic (health checks pass and "
            "its circuit is not open), else 0.", ["upstream", "target"], registry=r,
            multiprocess_mode="livemin")
        self.rate_limited = Counter(
            "gateway_rate_limited", "Requests refused with 429.", ["route", "tenant"],
            registry=r)
        self.client_disconnects = Counter(
            "gateway_client_disconnects", "Requests whose client went away before the "
            "answer started (logged as 499); their upstream calls were abandoned.",
            route, registry=r)
        self.cache = Counter(
            "gateway_cache_requests", "Cache lookups by result (hit, miss, bypass).",
            ["route", "tenant", "result"], registry=r)
        self.reloads = Counter(
            "gateway_config_reloads", "Config reloads by result (success, failure), "
            "summed over workers.", ["result"], registry=r)
        self.store_up = Gauge(
            "gateway_store_up", "1 if the shared store answers a PING.", ["store"],
            registry=r, multiprocess_mode="livemin")
        self.store_degraded = Gauge(
            "gateway_store_degraded", "1 while the rate-limit store is degraded "
            "(failing open or closed).", registry=r, multiprocess_mode="livemax")
        self.store_degraded_seconds = Counter(
            "gateway_store_degraded_seconds", "Time the rate-limit store spent degraded.",
            registry=r)
        self.shadow_dropped = Counter(
            "gateway_shadow_dropped", "Shadow copies not sent: too many in flight, or "
            "a streamed request body.", registry=r)
        llm = ["route", "tenant", "model"]
        self.llm_tokens = Counter(
            "gateway_llm_tokens", "LLM tokens the upstreams reported (usage), by kind "
            "(prompt, completion).", [*llm, "kind"], registry=r)
        self.llm_spend = Counter(
            "gateway_llm_spend", "Currency units spent, by the models' price table.", llm,
            registry=r)
        self.llm_calls = Counter(
            "gateway_llm_calls", "LLM calls, by whether the upstream reported their usage "
            "(reported, missing).", [*llm, "usage"], registry=r)
        self.llm_budget = Gauge(
            "gateway_llm_budget_per_second", "A tenant's budget as a sustained rate: its "
            "tightest budget limit, currency units per second (the burn-rate alert's "
            "denominator).", ["tenant"], registry=r, multiprocess_mode="livemax")
        self.jobs_submitted = Counter(
            "gateway_jobs_submitted", "Jobs accepted (202), by route and tenant.",
            ["route", "tenant"], registry=r)
        self.jobs_finished = Counter(
            "gateway_jobs_finished", "Jobs finished by a worker, by result (succeeded, "
            "failed).", ["route", "status"], registry=r)
        self.job_duration = Histogram(
            "gateway_job_duration_seconds", "Job latency: submitted to finished.", route,
            buckets=JOB_BUCKETS, registry=r)
        self.job_wait = Histogram(
            "gateway_job_queue_wait_seconds", "Time a job waited in the queue before its "
            "first start.", route, buckets=JOB_BUCKETS, registry=r)
        self.jobs_stale = Counter(
            "gateway_jobs_stale_results", "Results refused because another worker had "
            "taken the job over (a duplicate execution the client never sees).", registry=r)
        self.job_webhooks = Counter(
            "gateway_job_webhooks", "Webhook delivery attempts by result (delivered, "
            "retried, dead: dead-lettered after the last retry).", ["result"], registry=r)
        self.jobs_queue_depth = Gauge(
            "gateway_jobs_queue_depth", "Jobs queued (waiting for a worker) and running.",
            ["state"], registry=r, multiprocess_mode="livemax")
        for result in WEBHOOK_RESULTS:
            self.job_webhooks.labels(result)
        for state in ("queued", "running"):
            self.jobs_queue_depth.labels(state)
        for result in ("success", "failure"):  # both exist from the start: rate() works
            self.reloads.labels(result)
        self._children: dict[tuple[Any, ...], Any] = {}
        self._tally = Tally()
        self.active = 0  # requests being handled: counted by the access-log middleware
        # The two series every request touches, by (route, method, status): their labels
        # (status class, OTHER for odd methods) are worked out once, not per request.
        self._request_series: dict[tuple[str, str, int],
                                   tuple[PendingCount, PendingHistogram]] = {}
        # And the upstream duration series, by (route, group, target), found in one lookup.
        self._upstream_series: dict[tuple[str, str, str], PendingHistogram] = {}
        self._degraded_seen = 0.0
        self._shadow_dropped_seen = 0
        self._budgets_of: object = None  # the config the budget gauges were set from

    def _child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- per request -------------------------------------------------------------------

    def observe_request(self, ctx: RequestContext | None, method: str, status: int,
                        seconds: float, control: bool) -> None:
        """Record one finished request from what the pipeline left on its context."""
        route = ctx.route.name if ctx is not None else CONTROL if control else UNMATCHED
        if method not in _METHODS:  # before the key too: any token would be a new entry
            method = "OTHER"
        key = (route, method, status)
        series = self._request_series.get(key)
        if series is None:
            labels = (route, method, _STATUS_CLASSES.get(status // 100, "other"))
            series = self._request_series[key] = (
                self._tally.counter(self.requests, labels),
                self._tally.histogram(self.duration, (route,)))
        series[0].n += 1
        series[1].observe(seconds)
        if status == 499:
            self._tally.count(self.client_disconnects, (route,))
        if ctx is None:
            return
        if ctx.job_created:
            self._tally.count(self.jobs_submitted, (route, _tenant(ctx)))
        if status == 429 or ctx.cache_status:
            tenant = _tenant(ctx)
            if status == 429:
                self._tally.count(self.rate_limited, (route, tenant))
            if ctx.cache_status in CACHE_RESULTS:
                self._tally.count(self.cache, (route, tenant, ctx.cache_status.lower()))
        if ctx.llm is not None:
            self._observe_llm(ctx, route)
        self._observe_upstream(route, ctx)

    def _observe_upstream(self, route: str, ctx: RequestContext) -> None:
        previous = None
        durations = self._upstream_series
        for attempt in ctx.attempts:
            labels = (route, attempt.group, attempt.target)
            duration = durations.get(labels)
            if duration is None:
                duration = durations[labels] = self._tally.histogram(self.upstream_duration,
                                                                     labels)
            duration.observe(attempt.seconds)
            if attempt.outcome:
                self._tally.count(self.upstream_errors, (*labels, attempt.outcome))
            if previous is not None and previous.group == attempt.group:
                self._tally.count(self.upstream_retries,
                                  (route, previous.group, previous.target))
            previous = attempt
        fallbacks = ctx.fallbacks
        if fallbacks:
            chain = [g for g, _ in ctx.chain] if ctx.chain else ctx.route.groups
            for group in chain[1:fallbacks + 1]:
                self._tally.count(self.upstream_fallbacks, (route, group.name))

    def _observe_llm(self, ctx: RequestContext, route: str) -> None:
        call = ctx.llm
        assert call is not None
        principal = ctx.principal
        tenant = (principal.tenant_id if principal is not None
                  and principal.tenant_id in ctx.config.tenants else UNKNOWN)
        labels = (route, tenant, call.model.name)
        tally = self._tally
        if not call.reported:
            tally.count(self.llm_calls, (*labels, "missing"))
            return
        tally.count(self.llm_calls, (*labels, "reported"))
        tally.counter(self.llm_tokens, (*labels, "prompt")).n += call.prompt_tokens
        tally.counter(self.llm_tokens, (*labels, "completion")).n += call.completion_tokens
        tally.counter(self.llm_spend, labels).n += call.spend

    def observe_job(self, ctx: RequestContext | None, route: str, status: str,
                    written: bool, created: float, started: float | None,
                    first_start: bool) -> None:
        """One job run by a worker: its upstream attempts, and (when its result was
        written) its result and latency. `first_start`: this run was the job's first."""
        if ctx is not None:
            self._observe_upstream(route, ctx)
        now = time.time()
        if first_start and started is not None:
            self._tally.histogram(self.job_wait, (route,)).observe(max(0.0, started - created))
        if not written:
            self.jobs_stale.inc()  # rare: no tally needed
            return
        self._tally.count(self.jobs_finished, (route, status))
        self._tally.histogram(self.job_duration, (route,)).observe(max(0.0, now - created))

    def observe_webhook(self, result: str) -> None:
        self._tally.count(self.job_webhooks, (result,))

    def fold(self) -> None:
        """Move the tallied observations into the collectors (then they are scraped)."""
        self._tally.fold()
        self.in_flight.set(self.active)

    @property
    def series_count(self) -> int:
        """Label children this process holds (tallied series and state gauges)."""
        return len(self._tally) + len(self._children)

    # -- state -------------------------------------------------------------------------

    def observe_reload(self, config: object, error: ConfigError | None) -> None:
        """`ConfigReloader.on_reload` callback."""
        self.reloads.labels("failure" if error is not None else "success").inc()

    def refresh(self) -> None:
        """Fold the tally and set the state gauges from the sources (cheap; no I/O)."""
        self.fold()
        sources = self.sources
        if sources is None:
            return
        health = sources.health
        config = sources.holder.current
        if config is not self._budgets_of:  # a reload: the budgets may have changed
            self._budgets_of = config
            any_route = next(iter(config.routes), "")
            for tid in config.tenants:
                budget = config.limits.lookup(tid, any_route).budget
                if budget:
                    self._child(self.llm_budget, (tid,)).set(
                        min(i.amount / i.get_expiry() for i in budget))
        for group in config.groups.values():
            for target in group.targets:
                circuit = health.circuit_state(target.url)
                st = health.states.get(target.url)
                up = circuit != "open" and (st is None or st.healthy)
                self._child(self.circuit_state, (group.name, target.url)).set(
                    CIRCUIT_VALUES.get(circuit, 2))
                self._child(self.upstream_up, (group.name, target.url)).set(1 if up else 0)
        store = sources.store
        if store is not None:
            self.store_degraded.set(1 if store.degraded else 0)
            total = float(store.degraded_seconds_total)
            if total > self._degraded_seen:
                self.store_degraded_seconds.inc(total - self._degraded_seen)
                self._degraded_seen = total
        if sources.upstream is not None:
            dropped = sources.upstream.shadow_dropped
            if dropped > self._shadow_dropped_seen:
                self.shadow_dropped.inc(dropped - self._shadow_dropped_seen)
                self._shadow_dropped_seen = dropped

    async def run_refresher(self, interval: float = REFRESH_INTERVAL) -> None:
        """Refresh the state gauges (and PING the shared store) forever."""
        ping = self.sources.ping if self.sources is not None else None
        while True:
            try:
                self.refresh()  # also folds the tally: it must not stop for good
            except Exception:
                log.exception("metrics_refresh_failed")
            if ping is not None:
                try:
                    ok = bool(await asyncio.wait_for(ping(), timeout=interval))
                except Exception:  # any failure to answer means down, whatever the cause
                    ok = False
                self.store_up.labels("redis").set(1 if ok else 0)
            depth = self.sources.jobs_depth if self.sources is not None else None
            if depth is not None:
                try:
                    queued, running = await asyncio.wait_for(depth(), timeout=interval)
                    self.jobs_queue_depth.labels("queued").set(queued)
                    self.jobs_queue_depth.labels("running").set(running)
                except Exception:  # the store is down: the gauge keeps its last value
                    pass
            await asyncio.sleep(interval)

    # -- exposition --------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text format: this process, or every worker in multiprocess mode."""
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    async def endpoint(self, request: Request) -> Response:
        """GET /metrics."""
        if self.enabled:
            self.refresh()
        return Response(self.render(), media_type=CONTENT_TYPE_LATEST)
