"""What a GATEWAY_REDIS_URL means to the stores' own connection (`MuxRedis`).

The URL is parsed by redis-py's `parse_url`, the same rules the gateway's redis-py
client (for `limits` and the key store) follows, so both clients reach the same server
the same way. MuxRedis applies what a connection needs: host and port or a unix socket
path, username and password (AUTH), database (SELECT), client_name (CLIENT SETNAME), and
for rediss:// the TLS options below. Options that tune redis-py's own pool or sockets
are left to it: the gateway's settings set MuxRedis' timeouts. Any other option is an
error at start-up, naming it, rather than a connection that silently differs from the
one redis-py makes.
"""

from __future__ import annotations

import ssl
from typing import Any

from redis.asyncio.connection import SSLConnection, parse_url

APPLIED = frozenset({
    "host", "port", "path", "username", "password", "db", "client_name", "connection_class",
    "ssl_ca_certs", "ssl_cert_reqs", "ssl_check_hostname", "ssl_certfile", "ssl_keyfile",
    "ssl_password", "ssl_min_version",
})
# redis-py's per-client tuning: meaningful to its pool, not to one pipelined connection.
LEFT_TO_REDIS_PY = frozenset({
    "socket_timeout", "socket_connect_timeout", "socket_keepalive", "retry_on_timeout",
    "health_check_interval", "max_connections", "timeout", "protocol", "decode_responses",
})
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
              "required": ssl.CERT_REQUIRED}


def connection_options(url: str) -> dict[str, Any]:
    """The URL's options (redis-py's parsing); ValueError names what is not supported."""
    options: dict[str, Any] = dict(parse_url(url))
    unknown = sorted(set(options) - APPLIED - LEFT_TO_REDIS_PY)
    if unknown:
        raise ValueError(f"GATEWAY_REDIS_URL: unsupported option(s) {', '.join(unknown)}")
    if str(options.get("ssl_cert_reqs", "required")).lower() not in _CERT_REQS:
        raise ValueError("GATEWAY_REDIS_URL: ssl_cert_reqs must be none, optional or required")
    return options


def is_tls(options: dict[str, Any]) -> bool:
    return options.get("connection_class") is SSLConnection


def tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """TLS for rediss://: CA file, client certificate, verification and hostname rules."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"),
                                options.get("ssl_password"))
    if options.get("ssl_min_version") is not None:
        context.minimum_version = ssl.TLSVersion(options["ssl_min_version"])
    verify = _CERT_REQS[str(options.get("ssl_cert_reqs", "required")).lower()]
    if options.get("ssl_check_hostname") is False or verify == ssl.CERT_NONE:
        context.check_hostname = False
    context.verify_mode = verify
    return context
