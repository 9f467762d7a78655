"""The Prefer request header (RFC 7240), as far as the gateway acts on it.

`Prefer: respond-async` asks for a job instead of a wait: a route with `async:` in
routes.yaml answers it with 202 and a job (docs/jobs.md); a route with `async: {only:
true}` runs every request as a job. Other preferences are ignored, as the RFC allows,
and the answer names what was applied in `Preference-Applied`.
"""

from __future__ import annotations

from gateway.config.runtime import CompiledRoute

RESPOND_ASYNC = "respond-async"


def preferences(values: list[bytes]) -> set[str]:
    """The preference names of every Prefer header (lower-case, parameters dropped)."""
    names = set()
    for value in values:
        for item in value.decode("latin-1").split(","):
            name = item.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if name:
                names.add(name)
    return names


def runs_as_job(route: CompiledRoute, headers: list[tuple[bytes, bytes]]) -> tuple[bool, bool]:
    """(whether this request becomes a job, whether that applies the client's Prefer)."""
    jobs = route.spec.async_
    if jobs is None:
        return False, False
    asked = RESPOND_ASYNC in preferences([v for k, v in headers if k == b"prefer"])
    return asked or jobs.only, asked
