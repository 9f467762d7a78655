"""What a GATEWAY_REDIS_URL means to the stores' own connection (`MuxRedis`).

Three deployments, told apart by the scheme (the names of the `limits` library):

    redis://h:p/0, rediss://, unix://              one Redis (or a primary behind a proxy)
    redis+cluster://[user:pw@]h:p[,h:p...][?opts]  a Redis Cluster: the seed nodes
    redis+sentinel://[user:pw@]h:p[,h:p...]/service[/db][?opts]   Sentinel: the sentinels

(`rediss+cluster://`, `rediss+sentinel://` for TLS.) `redis_target(url)` splits one into
the nodes to ask and `node_url`, the redis:// URL of one data node with the credentials,
database and options: every connection, to whichever node, is made from it by the rules
below. The user and password are the data nodes'; sentinels that need a password take
`sentinel_password` (an option of this URL only).

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
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode

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


Kind = Literal["single", "cluster", "sentinel"]
SCHEMES: dict[str, tuple[Kind, str]] = {  # scheme -> (kind, the data nodes' scheme)
    "redis+cluster": ("cluster", "redis"), "rediss+cluster": ("cluster", "rediss"),
    "redis+sentinel": ("sentinel", "redis"), "rediss+sentinel": ("sentinel", "rediss")}
PLAIN_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where the stores' Redis is: one server, a cluster's seeds or a Sentinel set."""

    kind: Kind
    node_url: str  # one data node's URL; host and port replaced per node (`at`)
    nodes: tuple[tuple[str, int], ...] = ()  # cluster seeds or sentinels
    service: str = ""  # sentinel: the monitored primary's name
    sentinel_password: str | None = None

    def at(self, host: str, port: int) -> str:
        """node_url pointed at `host:port`."""
        scheme, rest = self.node_url.split("://", 1)
        auth, _, tail = rest.rpartition("@")
        path = tail[tail.find("/"):] if "/" in tail else "/0"
        where = f"[{host}]" if ":" in host else host
        return f"{scheme}://{auth + '@' if auth else ''}{where}:{port}{path}"


def redis_target(url: str) -> RedisTarget:
    """Parse GATEWAY_REDIS_URL (ValueError names what is wrong, never quoting the URL)."""
    if url.startswith(PLAIN_SCHEMES):
        connection_options(url)
        return RedisTarget("single", url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError("GATEWAY_REDIS_URL must start with redis://, rediss://, unix://, "
                         "redis+cluster:// or redis+sentinel:// (rediss+ for TLS)")
    kind, node_scheme = SCHEMES[scheme]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    auth, at, hosts = netloc.rpartition("@")
    nodes = tuple(_host_port(h, 26379 if kind == "sentinel" else 6379)
                  for h in hosts.split(","))
    options = parse_qsl(query, keep_blank_values=True)
    sentinel_password = next((unquote(v) for k, v in options if k == "sentinel_password"),
                             None)
    query = urlencode([(k, v) for k, v in options if k != "sentinel_password"])
    parts = [p for p in path.split("/") if p]
    service, db = "", "0"
    if kind == "sentinel":
        if not parts:
            raise ValueError("GATEWAY_REDIS_URL: redis+sentinel:// needs the service name "
                             "as its path (redis+sentinel://host:26379/mymaster)")
        service, parts = unquote(parts[0]), parts[1:]
    if parts:
        db = parts[0]
    if len(parts) > 1 or (kind == "cluster" and db != "0"):
        raise ValueError("GATEWAY_REDIS_URL: a Redis Cluster has database 0 only"
                         if kind == "cluster" else "GATEWAY_REDIS_URL: path is /service[/db]")
    host, port = nodes[0]
    node_url = f"{node_scheme}://{auth + at}{quote(host)}:{port}/{db}"
    node_url += f"?{query}" if query else ""
    connection_options(node_url)  # the options are checked as for one server
    return RedisTarget(kind, node_url, nodes, service, sentinel_password)


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":") if ":" in text else (text, "", "")
    host = host.strip("[]") or text
    if not host or (port and not port.isdigit()):
        raise ValueError("GATEWAY_REDIS_URL: every node is host:port")
    return host, int(port) if port else default_port
