"""The one command that starts a service: settings from the environment, flags on top.

Use `serve(...)` from a service's `main()`. uvloop and httptools (from uvicorn[standard])
are asked for explicitly: they are what the benchmark figures were measured with.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TypeVar

import uvicorn

from ml_services.runner import ModelRunner
from ml_services.server import create_app
from ml_services.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def serve(
    description: str,
    settings_cls: type[S],
    make_runner: Callable[[S], ModelRunner],
    argv: Sequence[str] | None = None,
) -> None:
    """Parse flags, build the app and run it with uvicorn until interrupted."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", help="listen address (env: <PREFIX>HOST)")
    parser.add_argument("--port", type=int, help="listen port (env: <PREFIX>PORT)")
    parser.add_argument("--log-level", help="uvicorn log level (env: <PREFIX>LOG_LEVEL)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = settings_cls(**overrides)
    app = create_app(make_runner(settings), settings)
    uvicorn.run(
        app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
        access_log=False, log_level=settings.log_level, lifespan="on",
    )
