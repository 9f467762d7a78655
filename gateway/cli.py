"""`gateway`: serve, check a config, run the local stack, manage credentials.

    gateway serve [--host H] [--port P] [--workers N] [--routes-file F]
    gateway check [ROUTES_FILE] [--policies-dir D]
    gateway dev   [--port P]      # the gateway plus the bundled inference services
    gateway keys | clients | signing-key ...   # credentials (see gateway/auth/admin.py)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.errors import ConfigError, ServiceUnavailable
from gateway.settings import Settings

# The bundled services `gateway dev` starts: (module, port env, default port).
BUNDLED_SERVICES = (
    ("ml_services.sentiment", 8101),
    ("ml_services.classify", 8102),
)


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


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    settings = _settings(args)
    routes = Path(args.file) if args.file else settings.routes_file
    try:
        config = load_config(routes, settings.policies_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"ok: {len(config.routes)} routes, {len(config.groups)} upstream groups "
          f"({', '.join(config.sources)})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.logging import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format, buffered=True)
    common = dict(host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                  access_log=False, server_header=False, log_config=None,
                  # The gateway is the edge: a client's X-Forwarded-For is data, not truth.
                  proxy_headers=False)
    if settings.workers > 1:
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
    try:
        app = create_app(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, **common)  # type: ignore[arg-type]
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Start the bundled services as child processes, then the gateway in front of them."""
    children = []
    for module, port in BUNDLED_SERVICES:
        children.append(subprocess.Popen(
            [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)]))
    try:
        _wait_for_ports([p for _, p in BUNDLED_SERVICES], timeout=60.0)
        return cmd_serve(args)
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def _wait_for_ports(ports: list[int], timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bundled service on port {port} did not start") from None
                time.sleep(0.1)


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
    p.set_defaults(func=cmd_dev)
    p = sub.add_parser("check", help="validate routes.yaml and policies/ offline")
    p.add_argument("file", nargs="?", help="routes file (default: GATEWAY_ROUTES_FILE)")
    p.add_argument("--policies-dir")
    p.set_defaults(func=cmd_check)

    from gateway.auth.admin import add_commands

    add_commands(sub, lambda cmd: lambda args: cmd(args, _settings(args)))
    return parser


def main(argv: list[str] | None = None) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from gateway.auth.admin import UsageError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
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
    except (UsageError, ServiceUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
