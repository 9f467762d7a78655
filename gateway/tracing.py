"""W3C Trace Context: accept the client's `traceparent` or start a trace.

The gateway is one hop: it keeps the trace id and flags and sends a new parent (span) id
upstream, so tracing back-ends see the gateway between the client and the backend.
"""

from __future__ import annotations

import random
import re

_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16


def continue_trace(incoming: bytes | None) -> tuple[bytes, str]:
    """The `traceparent` to send upstream and the trace id (hex) for logs."""
    if incoming is not None:
        m = _TRACEPARENT.match(incoming.strip())
        if m and m.group(1) != _ZERO_TRACE and m.group(2) != _ZERO_SPAN:
            trace_id, flags = m.group(1), m.group(3)
            return b"00-%s-%016x-%s" % (trace_id, _span_id(), flags), trace_id.decode()
    trace_id = f"{random.getrandbits(128) or 1:032x}"
    return f"00-{trace_id}-{_span_id():016x}-01".encode(), trace_id


def _span_id() -> int:
    # W3C asks for random ids, not secret ones; never all zeros.
    return random.getrandbits(64) or 1
