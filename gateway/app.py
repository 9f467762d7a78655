"""`create_app(settings)`: the one place that builds clients, stores, middleware, routes
and error handlers, and decides the order they run in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from gateway.auth.oauth import OAuthEndpoints
from gateway.auth.service import AuthService
from gateway.config import load_config
from gateway.config.reload import ConfigReloader
from gateway.config.runtime import ConfigHolder, RuntimeConfig
from gateway.errors import GatewayError, problem_response
from gateway.health import ReadinessCheck, healthz, readyz
from gateway.middleware import AccessLogMiddleware, RequestIdMiddleware
from gateway.pipeline import Policy
from gateway.pipeline.authenticate import AuthenticatePolicy
from gateway.pipeline.authorize import AuthorizePolicy
from gateway.proxy import ProxyEndpoint
from gateway.settings import Settings
from gateway.stores import connect_redis
from gateway.upstream import UpstreamClient
from gateway.upstream_health import TargetHealth

log = structlog.get_logger("gateway")


def build_policies(settings: Settings, auth: AuthService) -> list[Policy]:
    """The request pipeline, in order. Authentication first: nothing below it runs for
    an unknown caller; rate limiting before the cache, so hits are counted too."""
    return [AuthenticatePolicy(auth), AuthorizePolicy()]


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


def create_app(settings: Settings, config: RuntimeConfig | None = None) -> Starlette:
    """Build the gateway app. Raises ConfigError at once if the config does not load."""
    if config is None:
        config = load_config(settings.routes_file, settings.policies_dir)
    holder = ConfigHolder(config)
    health = TargetHealth()
    auth = AuthService(settings)  # loads (or creates) the signing key: fails fast
    proxy = ProxyEndpoint(holder, build_policies(settings, auth),
                          upstream=None)  # type: ignore[arg-type]
    reloader = ConfigReloader(holder, settings.routes_file, settings.policies_dir,
                              settings.reload_interval)

    async def config_ready() -> tuple[bool, str]:
        return True, f"generation {holder.generation}, {len(holder.current.routes)} routes"

    readiness: dict[str, ReadinessCheck] = {"config": config_ready,
                                            "credentials": auth.ready}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        session = UpstreamClient.make_session(settings.upstream_pool_size,
                                              settings.upstream_pool_per_host)
        proxy.upstream = UpstreamClient(session, health,
                                        shadow_max_in_flight=settings.shadow_max_in_flight)
        control = httpx.AsyncClient()
        # One Redis client for every store when replicas share state; None on one machine.
        app.state.redis = connect_redis(settings.redis_url) if settings.redis_url else None
        await auth.start(app.state.redis, control)
        tasks = [
            asyncio.create_task(reloader.run(), name="config-reload"),
            asyncio.create_task(health.run_checks(holder, control), name="health-checks"),
        ]
        log.info("gateway_started", routes=len(holder.current.routes),
                 routes_file=str(settings.routes_file))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await auth.close()
            await proxy.upstream.close()
            await control.aclose()
            if app.state.redis is not None:
                await app.state.redis.aclose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *OAuthEndpoints(auth, holder).routes(),
            Mount("", app=proxy),
        ],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(AccessLogMiddleware, enabled=settings.access_log),
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
    app.state.readiness_checks = readiness
    app.state.auth = auth
    return app


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` worker processes: settings from the environment."""
    from gateway.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
