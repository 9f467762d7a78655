"""One structlog processor chain, configured once at start-up.

JSON lines in production (or whenever stderr is not a terminal), colours on a terminal.
`redact_secrets` runs before rendering, so no key, token or secret reaches any output.

The access line, written once per request, has a short path of its own in the server's
JSON mode (`write_access`): the same keys, timestamp and `redact_secrets` as the chain
would give it, rendered straight to the buffer. structlog's generic path (bound-logger
dispatch, the context-variable merge, six processors) was the largest cost the gateway
added per request (bench/bench_instructions.py, cases `logs` and `quiet`).

A request's own fields for the other lines it causes (`request_id`, then `tenant` and
`credential`) live in one dict in one context variable (`start_request_fields`,
`bind_request_fields`): one `ContextVar.set` per request, where structlog's
contextvars cost a context copy to clear and a variable per field.
"""

from __future__ import annotations

import atexit
import logging
import re
import sys
import threading
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
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


_secret_key: dict[str, bool] = {}  # field name -> is it a secret's name (names are few)


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: blank secret fields and scrub secrets out of strings."""
    known = _secret_key
    for k, v in event.items():
        secret = known.get(k)
        if secret is None:
            secret = k.lower() in SECRET_FIELDS
            if len(known) < 4096:
                known[k] = secret
        if secret:
            event[k] = REDACTED
        elif isinstance(v, str) and ("gw_" in v or "earer" in v.lower()):
            event[k] = _scrub(v)
    return event


_request_fields: ContextVar[dict[str, Any] | None] = ContextVar("gateway_request_fields",
                                                               default=None)


def start_request_fields(**fields: Any) -> None:
    """The fields of the request (or job) this task now runs, replacing any before."""
    _request_fields.set(fields)


def bind_request_fields(**fields: Any) -> None:
    """Add fields to the current request's (tasks it started see them too)."""
    current = _request_fields.get()
    if current is None:
        _request_fields.set(fields)
    else:
        current.update(fields)


def end_request_fields() -> None:
    _request_fields.set(None)


def merge_request_fields(_: Any, __: str, event: MutableMapping[str, Any]
                         ) -> MutableMapping[str, Any]:
    """structlog processor: the current request's fields (a line's own keys win)."""
    current = _request_fields.get()
    if current:
        for k, v in current.items():
            event.setdefault(k, v)
    return event


class _UtcClock:
    """ISO 8601 UTC timestamps, as structlog's TimeStamper(fmt="iso", utc=True) writes
    them, with the date and time formatted once per second instead of once per line."""

    def __init__(self) -> None:
        # (second, next second, its text): one tuple, replaced whole, so a line written
        # from another thread (stdlib logging) never pairs one second with another's text.
        self._current = (0.0, 0.0, "")

    def now(self) -> str:
        t = time.time()
        second, following, prefix = self._current
        if not second <= t < following:
            whole = int(t)
            second, prefix = float(whole), time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            self._current = (second, second + 1.0, prefix)
        return "%s.%06dZ" % (prefix, (t - second) * 1e6)  # noqa: UP031 (faster)


_clock = _UtcClock()


def add_timestamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `timestamp` in ISO 8601 UTC with microseconds."""
    event["timestamp"] = _clock.now()
    return event


def _orjson_dumps(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=str)


class BufferedLineLogger:
    """Writes JSON lines through a buffer: one write per 64 KiB or per `flush()` instead
    of a write and flush per line, which cost the server a syscall per request.

    Warnings and errors flush at once; `gateway serve` flushes the rest every 200 ms.

    The buffer is one bytearray, never replaced: a line is copied in by one call, and a
    flush takes what it writes off the front under a lock. So a line logged from a worker
    thread (a config check) is neither split, lost nor written twice, which a list swapped
    out at each flush could not promise. Each line's bytes object is freed at once,
    instead of ~170 of them kept alive until the flush, which in a loop made the access
    line about twice as slow (bench/bench_observability_parts.py).
    """

    def __init__(self, stream: BinaryIO, limit: int = 65536):
        self._stream = stream
        self._buffer = bytearray()
        self._limit = limit
        self._flushing = threading.Lock()

    def info(self, message: bytes) -> None:
        self.write_line(message + b"\n")

    debug = msg = info

    def write_line(self, line: bytes) -> None:
        """One line, with its newline (the access line's comes from orjson)."""
        buffer = self._buffer
        buffer.extend(line)
        if len(buffer) >= self._limit:
            self.flush()

    def warning(self, message: bytes) -> None:
        self.info(message)
        self.flush()

    warn = error = critical = exception = fatal = warning

    def flush(self) -> None:
        buffer = self._buffer
        if buffer:
            with self._flushing:
                data = bytes(buffer)
                del buffer[:len(data)]  # what came in meanwhile stays for the next
                self._stream.write(data)
                self._stream.flush()


_NEWLINE = orjson.OPT_APPEND_NEWLINE
_buffered: BufferedLineLogger | None = None
_access_direct = False  # JSON to the buffer: write_access renders lines itself
_access_enabled = True  # False when the level is above info
_access = structlog.get_logger("gateway.access")


def write_access(fields: dict[str, Any]) -> None:
    """Write one access line (`"event": "request"`), given its fields (a fresh dict, used up).

    Either way the line gets the same keys as any other: level, timestamp, and fields
    redacted by `redact_secrets`. The caller passes the request's `request_id`, `tenant`
    and `credential` itself (other lines take them from the context variables, and
    nothing else bound there reaches this line). The caller's field names are never
    secrets' names (tests/observability/test_logs.py).
    """
    if not _access_enabled:
        return
    if not _access_direct or _buffered is None:
        _access.info("request", **fields)
        return
    fields["event"] = "request"
    fields["level"] = "info"
    fields["timestamp"] = _clock.now()
    data = orjson.dumps(fields, default=str, option=_NEWLINE)
    # The rendered line is searched for what `redact_secrets` looks for (a C-speed scan of
    # one short string instead of a Python loop over every field); only a line that
    # could hold a secret goes through it. JSON keeps these words as they are. `find`, not
    # `in`: bytes' `in` first tries its operand as an int and builds a TypeError to drop.
    if data.find(b"gw_") >= 0 or data.lower().find(b"earer") >= 0:
        data = orjson.dumps(redact_secrets(None, "info", fields), default=str,
                            option=_NEWLINE)
    _buffered.write_line(data)


def flush_logs() -> None:
    """Write out buffered log lines (a no-op unless buffering is on)."""
    if _buffered is not None:
        _buffered.flush()


class StdlibToStructlogHandler(logging.Handler):
    """Hands each stdlib record (uvicorn's, asyncio's) to structlog, so it is rendered
    by the one processor chain: `event`, `level`, `timestamp`, the request's context,
    plus `logger` (the stdlib logger's name) and `exception` when there is one."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            structlog.get_logger(record.name).log(record.levelno, record.getMessage(),
                                                  **fields)
            # Such records are few (start, stop, errors), and a worker process may end
            # without running atexit: write them out now.
            flush_logs()
        except Exception:
            self.handleError(record)


def configure_logging(level: str = "info", fmt: str = "auto", buffered: bool = False) -> None:
    """Set the one processor chain for the process (and route stdlib logging through it).

    `buffered` (servers only) batches JSON lines; call `flush_logs()` periodically.
    """
    global _buffered, _access_direct, _access_enabled
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    level_no = logging.getLevelName(level.upper())
    _access_enabled = level_no <= logging.INFO
    _access_direct = json_output and buffered
    shared: list[Any] = [
        merge_request_fields,
        structlog.processors.add_log_level,
        add_timestamp,
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
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, asyncio) log through stdlib: their records go down the same
    # chain, renderer and (buffered) output, so every line has the same keys and format
    # and stays in order with the gateway's own. uvicorn's access log is off (the
    # gateway writes its own access line).
    root = logging.getLogger()
    root.handlers[:] = [StdlibToStructlogHandler()]
    root.setLevel(level.upper())
    # httpx logs every control-path request (health checks, JWKS) at INFO.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, level_no))
