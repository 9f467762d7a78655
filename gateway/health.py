"""`/healthz` (the process is alive) and `/readyz` (it can serve: config loaded, stores up)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse

# A readiness check answers (ok, detail); the app registers them at start-up.
ReadinessCheck = Callable[[], Awaitable[tuple[bool, str]]]


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


class Readiness:
    """GET /readyz over the named checks `create_app` gives it."""

    def __init__(self, checks: Mapping[str, ReadinessCheck]):
        self.checks = dict(checks)

    async def endpoint(self, request: Request) -> JSONResponse:
        results = {}
        ready = True
        for name, check in self.checks.items():
            try:
                ok, detail = await check()
            except Exception as exc:  # a check that crashes means not ready, not a 500
                ok, detail = False, type(exc).__name__
            results[name] = {"ok": ok, "detail": detail}
            ready = ready and ok
        return JSONResponse({"status": "ready" if ready else "not ready",
                             "checks": results}, status_code=200 if ready else 503)
