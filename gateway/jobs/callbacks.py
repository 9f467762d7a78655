"""Which Callback-URL a tenant may give: only under a prefix policies/tenants.yaml allows.

A prefix allows a URL when scheme, host and port are equal and the URL's path starts
with the prefix's path at a segment boundary (the prefix ends in '/', or the next
character is '/'): `https://hooks.example.com/gw` allows `.../gw` and `.../gw/done`, never
`.../gwx` nor `https://hooks.example.com.evil/`. Parsed, not compared as strings, so
tricks with user info (`https://hooks.example.com@evil/`), case or default ports do not
get through. The gateway then never calls an address an operator did not allow.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from gateway.errors import UnprocessableContent

MAX_URL = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def check_callback(url: str, allowed: list[str]) -> str:
    """`url` if the tenant may use it, else UnprocessableContent (422)."""
    try:
        parts = urlsplit(url)
        origin = _origin(parts)
    except ValueError:  # a bad port, a bad IPv6 literal
        raise UnprocessableContent(UnprocessableContent.CALLBACK_MALFORMED) from None
    if (len(url) > MAX_URL or parts.scheme not in _DEFAULT_PORTS or not parts.hostname
            or parts.username is not None or parts.fragment
            or any(ord(c) < 0x21 or ord(c) > 0x7e for c in url)):
        raise UnprocessableContent(UnprocessableContent.CALLBACK_MALFORMED)
    path = parts.path or "/"
    for prefix in allowed:
        p = urlsplit(prefix)
        if _origin(p) != origin:
            continue
        base = p.path or "/"
        if path == base or (path.startswith(base) and
                            (base.endswith("/") or path[len(base)] == "/")):
            return url
    raise UnprocessableContent(UnprocessableContent.CALLBACK_NOT_ALLOWED)
