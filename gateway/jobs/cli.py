"""`gateway worker`: job executors in a process of their own, beside the gateways.

    gateway worker [--concurrency N] [--metrics-port P] [--routes-file F] [--policies-dir D]

It needs GATEWAY_REDIS_URL (the queue the gateways fill), loads routes.yaml and
policies/ as `gateway serve` does (and reloads them the same way), runs N executors
(`gateway.jobs.worker`) and the webhook sender, and on SIGTERM or SIGINT stops taking
jobs, lets the running ones finish for GATEWAY_JOBS_SHUTDOWN_GRACE seconds and hands the
rest back. With --metrics-port it serves its Prometheus metrics (the job and upstream
series) on that port.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from typing import Any

import httpx
import structlog

from gateway.auth.key_store import open_key_store, watch
from gateway.config import load_config
from gateway.config.reload import ConfigReloader
from gateway.config.runtime import ConfigHolder
from gateway.jobs.service import JobService
from gateway.metrics import GatewayMetrics, StateSources
from gateway.settings import Settings
from gateway.stores import open_stores
from gateway.transport import Http1Transport
from gateway.upstream import UpstreamClient
from gateway.upstream_health import TargetHealth

log = structlog.get_logger("gateway.jobs")

NEEDS_REDIS = ("gateway worker needs GATEWAY_REDIS_URL: without Redis the queue lives in "
               "the gateway process, and its own workers run the jobs "
               "(GATEWAY_JOBS_WORKERS, docs/jobs.md)")


class WorkerUsageError(Exception):
    """`gateway worker` cannot run as asked (exit status 1)."""


async def run_worker(settings: Settings, concurrency: int, metrics_port: int | None) -> None:
    config = load_config(settings.routes_file, settings.policies_dir)  # ConfigError: main
    holder = ConfigHolder(config)
    health = TargetHealth()
    upstream = UpstreamClient(health, Http1Transport(settings.upstream_pool_size),
                              shadow_max_in_flight=settings.shadow_max_in_flight)
    stores = open_stores(settings)
    keys = open_key_store(settings.data_dir, stores.redis)
    await keys.refresh()
    metrics = GatewayMetrics(enabled=True, sources=StateSources(
        holder, health, stores.breaker, upstream, jobs_depth=stores.jobs.depth))
    reloader = ConfigReloader(holder, settings.routes_file, settings.policies_dir,
                              settings.reload_interval, on_reload=metrics.observe_reload)
    service = JobService(settings, holder, stores.jobs, upstream, lambda: keys, concurrency,
                         metrics)
    http_control = httpx.AsyncClient()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=settings.host, registry=metrics.registry)
    tasks = [asyncio.create_task(reloader.run(), name="config-reload"),
             asyncio.create_task(health.run_checks(holder, http_control), name="health"),
             asyncio.create_task(watch(keys, settings.key_cache_ttl), name="credentials"),
             asyncio.create_task(metrics.run_refresher(), name="metrics")]
    await service.start()
    try:
        await stop.wait()
        log.info("job_worker_stopping", grace=settings.jobs_shutdown_grace)
    finally:
        await service.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        await http_control.aclose()
        await keys.close()
        await stores.aclose()
        metrics.fold()


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.logging import configure_logging

    if settings.redis_url is None:
        raise WorkerUsageError(NEEDS_REDIS)
    configure_logging(settings.log_level, settings.log_format, buffered=False)
    asyncio.run(run_worker(settings, args.concurrency, args.metrics_port))
    return 0


def add_command(sub: Any, settings: Callable[[argparse.Namespace], Settings],
                serve_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("worker", help="run job executors (needs GATEWAY_REDIS_URL)")
    serve_args(p)
    p.add_argument("--concurrency", type=int, default=16, help="jobs run at once (16)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics on this port")
    p.set_defaults(func=lambda args: cmd_worker(args, settings(args)))
