"""One structlog processor chain, configured once at start-up.

JSON lines in production (or whenever stderr is not a terminal), colours on a terminal.
`redact_secrets` runs before rendering, so no key, token or secret reaches any output.
"""

from __future__ import annotations

import atexit
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, BinaryIO

import orjson
import structlog

# Field names whose values are secrets wherever they appear.
SECRET_FIELDS = frozenset({
    "authorization", "x-api-key", "api_key", "key", "secret", "client_secret", "password",
    "token", "access_token", "refresh_token", "cookie", "set-cookie", "private_key",
})
REDACTED = "[REDACTED]"
# Bearer credentials and the gateway's own key format, wherever they show up in text.
_SECRET_TEXT = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+|\bgw_[A-Za-z0-9]+_[A-Za-z0-9_-]+")


def _scrub(text: str) -> str:
    return _SECRET_TEXT.sub(lambda m: (m.group(1) or "") + REDACTED, text)


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: blank secret fields and scrub secrets out of strings."""
    for k, v in event.items():
        if k.lower() in SECRET_FIELDS:
            event[k] = REDACTED
        elif isinstance(v, str) and ("earer" in v or "gw_" in v):
            event[k] = _scrub(v)
    return event


def _orjson_dumps(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=str)


class BufferedLineLogger:
    """Writes JSON lines through a buffer: one write per 64 KiB or per `flush()` instead
    of a write and flush per line, which cost the server a syscall per request.

    Warnings and errors flush at once; `gateway serve` flushes the rest every 200 ms.
    """

    def __init__(self, stream: BinaryIO, limit: int = 65536):
        self._stream = stream
        self._buffer: list[bytes] = []
        self._size = 0
        self._limit = limit

    def info(self, message: bytes) -> None:
        self._buffer.append(message + b"\n")
        self._size += len(message) + 1
        if self._size >= self._limit:
            self.flush()

    debug = msg = info

    def warning(self, message: bytes) -> None:
        self.info(message)
        self.flush()

    warn = error = critical = exception = fatal = warning

    def flush(self) -> None:
        if self._buffer:
            data, self._buffer, self._size = b"".join(self._buffer), [], 0
            self._stream.write(data)
            self._stream.flush()


_buffered: BufferedLineLogger | None = None


def flush_logs() -> None:
    """Write out buffered log lines (a no-op unless buffering is on)."""
    if _buffered is not None:
        _buffered.flush()


def configure_logging(level: str = "info", fmt: str = "auto", buffered: bool = False) -> None:
    """Set the one processor chain for the process (and route stdlib logging through it).

    `buffered` (servers only) batches JSON lines; call `flush_logs()` periodically.
    """
    global _buffered
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    if json_output:
        renderer: Any = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if buffered:
            _buffered = BufferedLineLogger(sys.stderr.buffer)
            atexit.register(flush_logs)
            factory: Any = lambda *_: _buffered  # noqa: E731
        else:
            factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
        chain = [*shared, structlog.processors.format_exc_info, renderer]
    else:
        factory = structlog.PrintLoggerFactory(sys.stderr)
        chain = [*shared, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, asyncio) log through stdlib: give them the same level.
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(name)s %(message)s")
    # httpx logs every control-path request (health checks, JWKS) at INFO.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
