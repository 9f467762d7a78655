"""What a GATEWAY_REDIS_URL means to the stores' own connection (`MuxRedis`).

The URL is parsed by redis-py's `parse_url`, the same rules the gateway's redis-py
client (for `limits` and the key store) follows, so both clients reach the same server
the same way. MuxRedis applies what a connection needs: host and port or a unix socket
path, username and password (AUTH), database (SELECT), client_name (CLIENT SETNAME), and
for rediss:// the TLS options below, as redis-py does. Options the gateway sets itself
(timeouts, pool size, reply decoding) are refused, and so is any option not listed:
an error at start-up naming it, rather than a connection that silently differs from
the one redis-py makes or from the settings.
"""

from __future__ import annotations

import ssl
from typing import Any

from redis.asyncio.connection import SSLConnection, parse_url

APPLIED = frozenset({
    "host", "port", "path", "username", "password", "db", "client_name", "connection_class",
    "ssl_ca_certs", "ssl_ca_path", "ssl_cert_reqs", "ssl_check_hostname", "ssl_certfile",
    "ssl_keyfile", "ssl_password", "ssl_min_version", "ssl_ciphers",
})
# redis-py's own connection tuning, harmless to the gateway's use of it.
LEFT_TO_REDIS_PY = frozenset({"socket_keepalive", "health_check_interval", "retry_on_timeout"})
# Options the gateway sets itself (timeouts from GATEWAY_STORE_TIMEOUT, the pool the
# breaker's bound assumes, bytes replies): in the URL they would silently override it.
SET_BY_THE_GATEWAY = frozenset({"socket_timeout", "socket_connect_timeout", "timeout",
                                "max_connections", "decode_responses", "protocol"})
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
              "required": ssl.CERT_REQUIRED}  # redis-py's names, exactly


def connection_options(url: str) -> dict[str, Any]:
    """The URL's options (redis-py's parsing); ValueError says what is wrong, never
    quoting the URL (it may hold a password)."""
    try:
        options: dict[str, Any] = dict(parse_url(url))
    except ValueError:
        raise ValueError("GATEWAY_REDIS_URL is not a valid Redis URL (percent-encode any "
                         "special character in the user name or password)") from None
    fixed = sorted(set(options) & SET_BY_THE_GATEWAY)
    if fixed:
        raise ValueError(f"GATEWAY_REDIS_URL: {', '.join(fixed)} is set by the gateway "
                         "(see GATEWAY_STORE_TIMEOUT), not in the URL")
    unknown = sorted(set(options) - APPLIED - LEFT_TO_REDIS_PY)
    if unknown:
        raise ValueError(f"GATEWAY_REDIS_URL: unsupported option(s) {', '.join(unknown)}")
    if options.get("ssl_cert_reqs", "required") not in _CERT_REQS:
        raise ValueError("GATEWAY_REDIS_URL: ssl_cert_reqs must be none, optional or required")
    if options.get("ssl_keyfile") and not options.get("ssl_certfile"):
        raise ValueError("GATEWAY_REDIS_URL: ssl_keyfile needs ssl_certfile")
    if options.get("ssl_min_version") is not None:
        try:
            ssl.TLSVersion(options["ssl_min_version"])
        except ValueError:
            raise ValueError("GATEWAY_REDIS_URL: ssl_min_version must be a TLS version "
                             "number (771 for TLS 1.2, 772 for TLS 1.3)") from None
    return options


def is_tls(options: dict[str, Any]) -> bool:
    return options.get("connection_class") is SSLConnection


def tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """TLS for rediss://, built as redis-py's RedisSSLContext builds it: the system's
    CAs plus any given, the client certificate, verification and hostname rules."""
    verify = _CERT_REQS[options.get("ssl_cert_reqs", "required")]
    context = ssl.create_default_context()
    context.check_hostname = verify != ssl.CERT_NONE and options.get(
        "ssl_check_hostname", True) is not False
    context.verify_mode = verify
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"),
                                options.get("ssl_password"))
    if options.get("ssl_ca_certs") or options.get("ssl_ca_path"):
        context.load_verify_locations(cafile=options.get("ssl_ca_certs"),
                                      capath=options.get("ssl_ca_path"))
    if options.get("ssl_min_version") is not None:
        context.minimum_version = ssl.TLSVersion(options["ssl_min_version"])
    if options.get("ssl_ciphers"):
        context.set_ciphers(options["ssl_ciphers"])
    return context
