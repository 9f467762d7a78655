"""`create_app(settings)`: the one place that builds clients, stores, middleware, the
gateway's endpoints and the policy list, and decides the order they run in.

    RequestEdge → GatewayDispatch → endpoint     (the gateway's own, reserved paths)
                → ProxyEndpoint               (every other path)
Every answer, error or not, passes the same stack; every error is rendered by
`gateway.errors.send_problem`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import structlog
from starlette.routing import Router
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from gateway.admin_api import AdminApi
from gateway.auth.oauth import JWKS_PATH, METADATA_PATH, TOKEN_PATH, OAuthEndpoints
from gateway.auth.service import AuthService
from gateway.config import load_config
from gateway.config.reload import ConfigReloader
from gateway.config.runtime import ConfigHolder, RuntimeConfig
from gateway.drain import SHUTTING_DOWN, Drain
from gateway.endpoints import Endpoint, GatewayDispatch
from gateway.errors import ServiceUnavailable, send_problem
from gateway.health import Readiness, ReadinessCheck, healthz
from gateway.jobs.api import JobsApi
from gateway.jobs.records import JOBS_PATH
from gateway.jobs.service import JobService
from gateway.jobs.submit import AsyncJobPolicy
from gateway.logging import flush_logs
from gateway.metrics import GatewayMetrics, StateSources
from gateway.metrics_multiproc import forget_dead_workers, worker_exiting
from gateway.middleware import RequestEdge
from gateway.openapi.control import OPENAPI_PATH
from gateway.openapi.document import OpenApiEndpoint
from gateway.pipeline import Policy
from gateway.pipeline.authenticate import AuthenticatePolicy
from gateway.pipeline.authorize import AuthorizePolicy
from gateway.pipeline.cache import CachePolicy
from gateway.pipeline.idempotency import IdempotencyPolicy
from gateway.pipeline.llm import LlmPolicy
from gateway.pipeline.rate_limit import RateLimitPolicy
from gateway.pipeline.token_limit import TokenLimitPolicy
from gateway.proxy import ProxyEndpoint
from gateway.semantic import Embedder
from gateway.settings import Settings
from gateway.stores import Stores, open_stores
from gateway.transport import Http1Transport
from gateway.upstream import UpstreamClient
from gateway.upstream_health import TargetHealth

log = structlog.get_logger("gateway")


def build_policies(settings: Settings, stores: Stores, auth: AuthService,
                   embedder: Embedder) -> list[Policy]:
    """The request pipeline, in order. Authentication first: nothing below it runs for
    an unknown caller; an llm route's model checked before any limit is charged; rate
    limiting before the rest, so replays, jobs and cache hits are counted too;
    Idempotency-Key before the job submission, which makes the key's claim with the job;
    jobs before the cache, which an asynchronous request never touches."""
    fail_closed = settings.store_fail_mode == "closed"
    return [
        AuthenticatePolicy(auth),
        AuthorizePolicy(),
        LlmPolicy(),
        RateLimitPolicy(stores, fail_closed=fail_closed),
        TokenLimitPolicy(stores, fail_closed=fail_closed),
        IdempotencyPolicy(stores, settings.idempotency_ttl, fail_closed=fail_closed),
        AsyncJobPolicy(stores, settings.jobs_max_queued),
        CachePolicy(stores, settings.cache_max_entry_bytes, embedder),
    ]


async def _flush_logs_periodically(interval: float = 0.2) -> None:
    try:
        while True:
            await asyncio.sleep(interval)
            flush_logs()
    finally:
        flush_logs()


class GatewayApp:
    """The ASGI app: the one middleware stack over `GatewayDispatch` for HTTP, the
    lifespan for start-up and shutdown. Its attributes are the services `create_app`
    built, typed, for the lifespan and for tests to read."""

    def __init__(self, *, stack: ASGIApp, lifespan: Lifespan[Any], settings: Settings,
                 holder: ConfigHolder, reloader: ConfigReloader, target_health: TargetHealth,
                 metrics: GatewayMetrics, stores: Stores, auth: AuthService,
                 upstream: UpstreamClient, drain: Drain, jobs: JobService | None):
        self.stack = stack
        self.drain = drain
        self._lifespan = Router(lifespan=lifespan)
        self.settings, self.holder, self.reloader = settings, holder, reloader
        self.target_health, self.metrics, self.stores = target_health, metrics, stores
        self.auth, self.upstream = auth, upstream
        self.jobs = jobs  # the in-process job workers, if any

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.drain.draining:
                send = _closing(send)
            try:
                await self.stack(scope, receive, send)
            except asyncio.CancelledError:
                # uvicorn cancels what outlives the drain timeout (gateway/drain.py).
                state = scope.get("state", {})
                if not self.drain.draining or "status" in state:  # answer begun: cut
                    raise
                await send_problem(_closing(send), ServiceUnavailable(SHUTTING_DOWN),
                                   state.get("request_id", ""))
        elif scope["type"] == "lifespan":
            await self._lifespan.lifespan(scope, receive, send)
        else:  # websocket: nothing here speaks it
            await send({"type": "websocket.close", "code": 1003})


def _closing(send: Send) -> Send:
    """While draining: every answer ends its connection, so a keep-alive client's next
    request opens a new one (to a replica that is not going away)."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await send(message)

    return send_closing


def create_app(settings: Settings, config: RuntimeConfig | None = None) -> GatewayApp:
    """Build the gateway app. Raises ConfigError at once if the config does not load."""
    if config is None:
        config = load_config(settings.routes_file, settings.policies_dir)
    holder = ConfigHolder(config)
    health = TargetHealth()
    stores = open_stores(settings)  # memory, or Redis when GATEWAY_REDIS_URL is set
    auth = AuthService(settings)  # loads (or creates) the signing key: fails fast
    # No I/O yet: the transport's pooled clients are made on first use.
    upstream = UpstreamClient(health, Http1Transport(settings.upstream_pool_size),
                              shadow_max_in_flight=settings.shadow_max_in_flight)
    embedder = Embedder()  # the semantic cache's client of the embeddings service
    proxy = ProxyEndpoint(holder, build_policies(settings, stores, auth, embedder), upstream)
    metrics = GatewayMetrics(enabled=settings.metrics, sources=StateSources(
        holder, health, stores.breaker, upstream,
        ping=stores.redis.ping if stores.redis is not None else None,
        jobs_depth=stores.jobs.depth))
    reloader = ConfigReloader(holder, settings.routes_file, settings.policies_dir,
                              settings.reload_interval, on_reload=metrics.observe_reload)

    async def config_ready() -> tuple[bool, str]:
        return True, f"generation {holder.generation}, {len(holder.current.routes)} routes"

    drain = Drain(settings.drain_grace)  # SIGTERM: see gateway/drain.py
    readiness: dict[str, ReadinessCheck] = {"draining": drain.ready, "config": config_ready,
                                            "credentials": auth.ready}
    if stores.redis is not None:
        readiness["redis"] = stores.breaker.check
    # Without Redis the queue lives in this process: only its own workers can run jobs.
    jobs = None
    if settings.in_process_job_workers:
        jobs = JobService(settings, holder, stores.jobs, upstream, auth.key_store,
                          settings.in_process_job_workers, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        http_control = httpx.AsyncClient()
        # One Redis client for every store when replicas share state; None on one machine.
        await auth.start(stores.redis, http_control)
        tasks = [
            asyncio.create_task(_flush_logs_periodically(), name="log-flush"),
            asyncio.create_task(reloader.run(), name="config-reload"),
            asyncio.create_task(health.run_checks(holder, http_control), name="health-checks"),
            asyncio.create_task(stores.refresh_forever(), name="inflight-refresh"),
        ]
        if jobs is not None:
            await jobs.start()
        if settings.metrics:
            forget_dead_workers()
            tasks.append(asyncio.create_task(metrics.run_refresher(), name="metrics"))
        # Everything built so far lives as long as the process: move it out of the
        # collector's reach, so the periodic full collections stay small (and so do the
        # latency spikes they cause under load).
        gc.collect()
        gc.freeze()
        drain.install()
        log.info("gateway_started", routes=len(holder.current.routes),
                 routes_file=str(settings.routes_file))
        try:
            yield
        finally:
            try:
                drain.cancel()
                if jobs is not None:  # running jobs finish, or go back to the queue
                    await jobs.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await auth.close()
                await upstream.close()
                await http_control.aclose()
                await embedder.aclose()
                await stores.aclose()
            finally:
                metrics.fold()  # the last second's observations, before its gauges go
                worker_exiting()

    admin = AdminApi(settings, settings.admin_credential(), holder, reloader, health,
                     stores, auth)
    oauth = OAuthEndpoints(auth, holder)
    jobs_api = JobsApi(holder, auth, stores.jobs)
    # The gateway's own endpoints, all in one place; their paths are reserved
    # (gateway.config.reserved): no route can take them, and they never reach the proxy.
    endpoints = [
        Endpoint("/healthz", ["GET"], healthz),
        Endpoint("/readyz", ["GET"], Readiness(readiness).endpoint),
        Endpoint("/metrics", ["GET"], metrics.endpoint),
        Endpoint(OPENAPI_PATH, ["GET"], OpenApiEndpoint(holder, settings.issuer_url).endpoint),
        Endpoint(TOKEN_PATH, ["POST"], oauth.token),
        Endpoint(JWKS_PATH, ["GET"], oauth.jwks),
        Endpoint(METADATA_PATH, ["GET"], oauth.metadata),
        *admin.endpoints(),
        Endpoint(JOBS_PATH, ["GET"], jobs_api.listing),
        Endpoint(JOBS_PATH + "/{id}", ["GET", "DELETE"], jobs_api.one),
    ]
    # One middleware stack for every request, outermost first.
    stack = RequestEdge(GatewayDispatch(endpoints, proxy), proxy, settings.access_log,
                        metrics)
    return GatewayApp(stack=stack, lifespan=lifespan, settings=settings, holder=holder,
                      reloader=reloader, target_health=health, metrics=metrics,
                      stores=stores, auth=auth, upstream=upstream, drain=drain,
                      jobs=jobs)


def create_app_from_env() -> GatewayApp:
    """Factory for `uvicorn --factory` worker processes: settings from the environment."""
    from gateway.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, buffered=True)
    return create_app(settings)
