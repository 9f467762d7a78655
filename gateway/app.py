"""`create_app(settings)`: the one place that builds clients, stores, middleware, routes
and error handlers, and decides the order they run in."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.auth.oauth import OAuthEndpoints
from gateway.auth.service import AuthService
from gateway.config import load_config
from gateway.config.reload import ConfigReloader
from gateway.config.runtime import ConfigHolder, RuntimeConfig
from gateway.errors import GatewayError, problem_response
from gateway.health import ReadinessCheck, healthz, readyz
from gateway.logging import flush_logs
from gateway.metrics import GatewayMetrics
from gateway.metrics_multiproc import forget_dead_workers, worker_exiting
from gateway.middleware import AccessLogMiddleware, RequestIdMiddleware
from gateway.pipeline import Policy
from gateway.pipeline.authenticate import AuthenticatePolicy
from gateway.pipeline.authorize import AuthorizePolicy
from gateway.pipeline.cache import CachePolicy
from gateway.pipeline.rate_limit import RateLimitPolicy
from gateway.proxy import ProxyEndpoint
from gateway.settings import Settings
from gateway.stores import Stores, open_stores
from gateway.upstream import UpstreamClient
from gateway.upstream_health import TargetHealth

log = structlog.get_logger("gateway")


def build_policies(settings: Settings, stores: Stores, auth: AuthService) -> list[Policy]:
    """The request pipeline, in order. Authentication first: nothing below it runs for
    an unknown caller; rate limiting before the cache, so hits are counted too."""
    return [
        AuthenticatePolicy(auth),
        AuthorizePolicy(),
        RateLimitPolicy(stores, fail_closed=settings.store_fail_mode == "closed"),
        CachePolicy(stores, settings.cache_max_entry_bytes),
    ]


async def _flush_logs_periodically(interval: float = 0.2) -> None:
    try:
        while True:
            await asyncio.sleep(interval)
            flush_logs()
    finally:
        flush_logs()


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


async def _on_gateway_error(request: Request, exc: Exception) -> Response:
    return problem_response(exc, _request_id(request))


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    return problem_response(exc, _request_id(request))


async def _on_unhandled(request: Request, exc: Exception) -> Response:
    # Runs outside the request-id middleware, so it adds the header itself.
    log.error("unhandled_error", error=type(exc).__name__, exc_info=exc)
    response = problem_response(exc, _request_id(request))
    response.headers["X-Request-ID"] = _request_id(request)
    return response


class GatewayApp(Starlette):
    """Starlette for the control endpoints; proxied paths skip its router.

    Every path the control routes do not claim goes straight to the proxy's own stack
    (request id, access log, proxy), which renders its own problem answers: Starlette's
    error middleware and router would only add cost to each proxied request.
    """

    def __init__(self, *, proxy_stack: ASGIApp, control_routes: list[Route], **kw: Any):
        super().__init__(**kw)
        self.proxy_stack = proxy_stack
        self.control_paths = frozenset(r.path for r in control_routes if "{" not in r.path)
        self.control_prefixes = tuple(r.path.split("{")[0] for r in control_routes
                                      if "{" in r.path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path not in self.control_paths and not (
                self.control_prefixes and path.startswith(self.control_prefixes)
            ):
                scope["app"] = self
                await self.proxy_stack(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, config: RuntimeConfig | None = None) -> Starlette:
    """Build the gateway app. Raises ConfigError at once if the config does not load."""
    if config is None:
        config = load_config(settings.routes_file, settings.policies_dir)
    holder = ConfigHolder(config)
    health = TargetHealth()
    stores = open_stores(settings)  # memory, or Redis when GATEWAY_REDIS_URL is set
    auth = AuthService(settings)  # loads (or creates) the signing key: fails fast
    proxy = ProxyEndpoint(holder, build_policies(settings, stores, auth),
                          upstream=None)  # type: ignore[arg-type]
    metrics = GatewayMetrics(enabled=settings.metrics)
    reloader = ConfigReloader(holder, settings.routes_file, settings.policies_dir,
                              settings.reload_interval, on_reload=metrics.observe_reload)

    async def config_ready() -> tuple[bool, str]:
        return True, f"generation {holder.generation}, {len(holder.current.routes)} routes"

    readiness: dict[str, ReadinessCheck] = {"config": config_ready,
                                            "credentials": auth.ready}
    if stores.redis is not None:
        readiness["redis"] = stores.breaker.check

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        proxy.upstream = UpstreamClient(health, pool_size=settings.upstream_pool_size,
                                        shadow_max_in_flight=settings.shadow_max_in_flight)
        http_control = httpx.AsyncClient()
        # One Redis client for every store when replicas share state; None on one machine.
        app.state.redis = stores.redis
        await auth.start(app.state.redis, http_control)
        tasks = [
            asyncio.create_task(_flush_logs_periodically(), name="log-flush"),
            asyncio.create_task(reloader.run(), name="config-reload"),
            asyncio.create_task(health.run_checks(holder, http_control), name="health-checks"),
            asyncio.create_task(stores.refresh_forever(), name="inflight-refresh"),
        ]
        if settings.metrics:
            forget_dead_workers()
            tasks.append(asyncio.create_task(metrics.run_refresher(app.state), name="metrics"))
        # Everything built so far lives as long as the process: move it out of the
        # collector's reach, so the periodic full collections stay small (and so do the
        # latency spikes they cause under load).
        gc.collect()
        gc.freeze()
        log.info("gateway_started", routes=len(holder.current.routes),
                 routes_file=str(settings.routes_file))
        try:
            yield
        finally:
            try:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await auth.close()
                await proxy.upstream.close()
                await http_control.aclose()
                await stores.aclose()
            finally:
                metrics.fold()  # the last second's observations, before its gauges go
                worker_exiting()

    control = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        *OAuthEndpoints(auth, holder).routes(),
    ]
    control_paths = frozenset(r.path for r in control)
    app = GatewayApp(
        proxy_stack=RequestIdMiddleware(AccessLogMiddleware(
            proxy, settings.access_log, metrics, control_paths)),
        control_routes=control,
        routes=[*control, Mount("", app=proxy)],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(AccessLogMiddleware, enabled=settings.access_log, metrics=metrics,
                       control_paths=control_paths),
        ],
        exception_handlers={
            GatewayError: _on_gateway_error,
            HTTPException: _on_http_exception,
            Exception: _on_unhandled,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.config_holder = holder
    app.state.reloader = reloader
    app.state.target_health = health
    app.state.metrics = metrics
    app.state.readiness_checks = readiness
    app.state.stores = stores
    app.state.store_health = stores.breaker  # .degraded, .degraded_seconds_total
    app.state.auth = auth
    return app


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` worker processes: settings from the environment."""
    from gateway.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, buffered=True)
    return create_app(settings)
