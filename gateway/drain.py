"""Graceful drain on SIGTERM: stop being chosen, finish what was started, then exit.

    SIGTERM ─> draining: /readyz answers 503 ("draining"), every answer carries
               `Connection: close` (clients reconnect, to another replica), new
               connections are still accepted
      └─(GATEWAY_DRAIN_GRACE seconds)─> uvicorn's own shutdown: the listener closes
               (new connections are refused), idle connections close, requests and
               streams in flight run to their end
      └─(GATEWAY_DRAIN_TIMEOUT more seconds)─> whatever still runs is cancelled; exit

The grace exists because an orchestrator stops sending traffic only some time after it
sent the signal (Kubernetes removes the pod from its Service's endpoints while the
kubelet signals it: the two race), so a replica that closed its listener at once would
refuse requests still routed to it. A second SIGTERM during the grace ends it at once;
SIGINT (Ctrl-C) skips it. With a grace of 0 (the default, right for one machine) SIGTERM
goes straight to uvicorn's shutdown.

A request the drain timeout cuts before its answer began gets the contract's 503 problem
(`SHUTTING_DOWN`, retryable elsewhere) rather than uvicorn's plain-text 500; one whose
answer had begun (a stream) is closed, as any broken stream is.

The drain sits in front of uvicorn's own handler: the lifespan installs it (in each
worker process, so `--workers N` drains every worker) and, when the grace is over, hands
the signal to the handler it replaced. Signals reach the main thread only; an app served
from another thread (the in-process test servers) has no drain.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

log = structlog.get_logger("gateway")

SHUTTING_DOWN = "the gateway is shutting down; retry the request"
Handler = Callable[[int, FrameType | None], Any]


class Drain:
    """This process's drain state: `draining` is read by /readyz and by every answer."""

    def __init__(self, grace: float):
        self.grace = grace
        self.draining = False
        self._timer: threading.Timer | None = None

    def install(self) -> bool:
        """Put the drain in front of the current SIGTERM handler (uvicorn's); False
        where there is nothing to drain (not the main thread, no handler to hand to)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        handler = signal.getsignal(signal.SIGTERM)
        if not callable(handler):
            return False
        signal.signal(signal.SIGTERM, self._on_sigterm(handler))
        return True

    def _on_sigterm(self, server_handler: Handler) -> Handler:
        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:  # a second SIGTERM: no more grace
                if self._timer is not None:
                    self._timer.cancel()
                server_handler(signum, frame)
                return
            self.draining = True
            log.info("draining", grace_seconds=self.grace)
            if self.grace <= 0:
                server_handler(signum, frame)
                return
            # uvicorn's handler only sets flags its loop polls: safe from a timer thread.
            self._timer = threading.Timer(self.grace, server_handler, (signum, None))
            self._timer.daemon = True
            self._timer.start()

        return on_sigterm

    async def ready(self) -> tuple[bool, str]:
        """A readiness check: not ready once draining."""
        return (False, "draining: shutting down") if self.draining else (True, "ok")

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
