"""`gateway`: serve, check a config, run the local stack, manage credentials.

    gateway serve [--host H] [--port P] [--workers N] [--routes-file F]
    gateway check [ROUTES_FILE] [--policies-dir D]
    gateway dev   [--port P] [--ml-ports A,B]   # plus the bundled services (gateway/dev.py)
    gateway worker [--concurrency N]           # job executors (gateway/jobs/cli.py)
    gateway init  [DIR] [--force]   # a starting routes.yaml and policies/ (gateway/scaffold.py)
    gateway keys | clients | signing-key ...   # credentials (see gateway/auth/admin.py)
    gateway openapi                            # the OpenAPI document (gateway/openapi/cli.py)
    gateway admin routes | tenants | keys ... | check   # a running gateway's admin API
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway import dev, scaffold
from gateway.errors import ConfigError, ServiceUnavailable
from gateway.settings import Settings

WORKERS_WITHOUT_REDIS = (
    "--workers {n} without GATEWAY_REDIS_URL: each worker counts rate limits, quotas and "
    "in-flight caps on its own, so a tenant gets up to {n}x its limits (and each worker "
    "caches alone, and keeps its own jobs: a poll that reaches another worker is a 404); "
    "set GATEWAY_REDIS_URL to share them (docs/rate-limits.md, docs/jobs.md)")


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """Settings given as command-line flags (they beat the environment)."""
    return {
        k: v for k, v in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "workers": getattr(args, "workers", None),
            "routes_file": getattr(args, "routes_file", None),
            "policies_dir": getattr(args, "policies_dir", None),
        }.items() if v is not None
    }


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(**_overrides(args))  # type: ignore[arg-type]


def report_config_error(exc: ConfigError) -> None:
    """Every problem on its own line, `file:line: field: message`, then what to do."""
    for problem in exc.problems:
        print(problem.text, file=sys.stderr)
    if any(p.field == "(file)" and p.message == "file not found" and
           p.file.endswith("routes.yaml") for p in exc.problems):
        print(f"hint: {scaffold.INIT_HINT}", file=sys.stderr)
    n = len(exc.problems)
    print(f"error: {n} problem{'s' * (n > 1)}; the config was not loaded", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    settings = _settings(args)
    routes = Path(args.file) if args.file else settings.routes_file
    config = load_config(routes, settings.policies_dir)  # ConfigError: reported by main
    print(f"ok: {len(config.routes)} routes, {len(config.groups)} upstream groups "
          f"({', '.join(config.sources)})")
    # What each target is sent besides the client's headers; secrets by where they come
    # from only (their values are never printed).
    for group in config.groups.values():
        for target in group.targets:
            if target.headers:
                shown = ", ".join(f"{h.name}: {h.shown}" for h in target.headers)
                print(f"upstream {group.name} {target.url}: {shown}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.http_protocol import HeaderLimits, ReadTimeouts, protocol_factory
    from gateway.logging import configure_logging

    settings = _settings(args)
    # Buffered only where the app's lifespan flushes it (the single-process server).
    configure_logging(settings.log_level, settings.log_format,
                      buffered=settings.workers == 1)
    # httptools, with the head limits and the contract's answers for what it refuses.
    http = protocol_factory(HeaderLimits(settings.max_header_line_bytes,
                                         settings.max_header_bytes, settings.max_headers),
                            ReadTimeouts(settings.header_timeout, settings.body_timeout))
    common = dict(host=settings.host, port=settings.port, loop="uvloop", http=http,
                  access_log=False, server_header=False, log_config=None,
                  # The gateway is the edge: a client's X-Forwarded-For is data, not truth.
                  proxy_headers=False,
                  # After the drain's grace (gateway/drain.py): in-flight requests get
                  # this long to finish once the listener is closed.
                  timeout_graceful_shutdown=settings.drain_timeout)
    if settings.workers > 1:
        if settings.redis_url is None:
            import structlog

            structlog.get_logger("gateway.cli").warning(
                "workers_without_redis", workers=settings.workers,
                message=WORKERS_WITHOUT_REDIS.format(n=settings.workers))
        # Worker processes rebuild settings from the environment (and .env): hand the
        # command-line flags down the same way.
        for key, value in _overrides(args).items():
            os.environ[f"GATEWAY_{key.upper()}"] = str(value)
        # One metrics view over all workers: prometheus-client's multiprocess mode.
        from gateway.metrics_multiproc import prepare_multiprocess_dir, remove_multiprocess_dir

        metrics_dir, made = prepare_multiprocess_dir()
        try:
            uvicorn.run("gateway.app:create_app_from_env", factory=True,
                        workers=settings.workers, **common)  # type: ignore[arg-type]
        finally:
            if made:
                remove_multiprocess_dir(metrics_dir)
        return 0
    app = create_app(settings)  # ConfigError: reported by main
    uvicorn.run(app, **common)  # type: ignore[arg-type]
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def serve_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.add_argument("--workers", type=int)
        p.add_argument("--routes-file")
        p.add_argument("--policies-dir")

    serve_args(p := sub.add_parser("serve", help="run the gateway"))
    p.set_defaults(func=cmd_serve)
    serve_args(p := sub.add_parser("dev", help="run the gateway and the bundled services"))
    dev.add_arguments(p)
    p.set_defaults(func=lambda args: dev.cmd_dev(args, _settings, cmd_serve))
    from gateway.jobs.cli import add_command as add_worker_command

    add_worker_command(sub, _settings, serve_args)
    p = sub.add_parser("check", help="validate routes.yaml and policies/ offline")
    p.add_argument("file", nargs="?", help="routes file (default: GATEWAY_ROUTES_FILE)")
    p.add_argument("--policies-dir")
    p.set_defaults(func=cmd_check)
    scaffold.add_command(sub)

    from gateway.auth.admin import add_commands

    add_commands(sub, lambda cmd: lambda args: cmd(args, _settings(args)))
    from gateway.admin_cli import add_command as add_admin_command

    add_admin_command(sub, lambda cmd: lambda args: cmd(args, _settings(args)))
    from gateway.openapi.cli import add_command as add_openapi_command

    add_openapi_command(sub, _settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from gateway.auth.admin import UsageError
    from gateway.jobs.cli import WorkerUsageError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except SettingsError as exc:  # a GATEWAY_* value that is not even JSON
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # GATEWAY_* settings: name and reason, never the value
        for problem in exc.errors():
            reason = problem["msg"].removeprefix("Value error, ")
            loc = problem["loc"]
            if loc:  # the variable, then the place inside its JSON value: VAR[0].field
                inside = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
                reason = f"GATEWAY_{str(loc[0]).upper()}{inside}: {reason}"
            print(f"error: {reason}", file=sys.stderr)
        return 2
    except (UsageError, ServiceUnavailable, dev.DevError, WorkerUsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
