"""The gateway's real log output (a `gateway serve` process, JSON lines): every line of a
request carries its request id, the access line has its fields, no secret is ever shown:
not the real API key the requests authenticate with, nor a wrong one, nor anything else
that looks like a credential in headers, paths or query strings."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import structlog

from gateway.context import Principal, RequestContext
from tests.conftest import write_routes
from tests.observability.tenants import issue_keys, write_policies
from tests.processes import GatewayProcess
from tests.servers import Backend

# Fake secrets; SECRETS[0] is the secret part of a well-formed key that does not match.
SECRETS = ["SECRETbearer0123456789abcdef", "gw_abc_SECRETapikey4567", "SECRETcookie89",
           "gw_abc_SECRETpath", "gw_abc_SECRETquery"]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# Lines a process writes outside any request: start-up (the first signing key is made
# in the empty data dir), background watchers, shutdown.
LIFECYCLE_LOGGERS = {"uvicorn.error"}
LIFECYCLE_EVENTS = {"gateway_started", "signing_key_created", "credentials_reloaded",
                    "draining",  # SIGTERM (gateway/drain.py)
                    "job_worker_started", "job_worker_stopped"}  # in-process job workers


def read_lines(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_every_line_of_a_request_has_its_id_and_no_secret(tmp_path: Path,
                                                         backend: Backend) -> None:
    write_routes(tmp_path / "routes.yaml", {
        "main": {"targets": [{"url": backend.url}]},
    }, [
        {"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/"},
        # Retries and an opening circuit: log lines in the middle of a request.
        {"name": "flaky", "match": {"path": "/flaky"}, "upstream": "main",
         "rewrite": "/status/503", "retry": {"attempts": 2, "backoff": 0.001}},
    ])
    write_policies(tmp_path / "policies", {"acme": {"name": "Acme"}})
    key = issue_keys(tmp_path / "data", ["acme"])["acme"]  # a real key, in the file store
    key_id, key_secret = key.removeprefix("gw_").split("_", 1)
    gw = GatewayProcess({"GATEWAY_LOG_FORMAT": "json", "GATEWAY_LOG_LEVEL": "info",
                         "GATEWAY_DATA_DIR": str(tmp_path / "data")}, tmp_path).start()
    # The cookie rides along and must not leak either.
    credentials = {"Authorization": f"Bearer {key}", "Cookie": f"session={SECRETS[2]}"}
    sent: dict[str, int] = {}
    try:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            def call(request_id: str, path: str, **headers: str) -> None:
                r = client.get(path, headers={**credentials, "X-Request-ID": request_id,
                                              **headers})
                if "X-Request-ID" not in headers:
                    assert r.headers["x-request-id"] == request_id
                sent[request_id] = r.status_code

            call("req-ok", f"/api/items/{SECRETS[3]}?api_key={SECRETS[4]}",
                 traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01")
            call("req-flaky", "/flaky")
            call("req-404", f"/nowhere/{SECRETS[3]}",
                 traceparent=f"00-{TRACE_ID}-00f067aa0ba902b7-01")
            call("req-made-up", "/api/x", **{"X-Request-ID": "bad id with spaces"})
            # The real key's id with a wrong secret: refused, and its line logged too.
            call("req-bad-key", "/api/y", Authorization=f"Bearer gw_{key_id}_{SECRETS[0]}")
            # A second, different credential in X-API-Key: refused, and not logged.
            call("req-two-keys", "/api/z", **{"X-API-Key": SECRETS[1]})
    finally:
        gw.stop()
    assert sent["req-ok"] == 200 and sent["req-flaky"] == 502 and sent["req-404"] == 404
    assert sent["req-made-up"] == 200 and sent["req-bad-key"] == 401
    assert sent["req-two-keys"] == 400

    text = gw.log_path.read_text()
    assert key_secret not in text, "the API key's secret reached the log"
    for secret in SECRETS:
        assert secret not in text, f"a secret reached the log: {secret}"
    assert "SECRET" not in text  # not even a part of one
    lines = read_lines(gw.log_path)
    # One chain renders every line, uvicorn's too: the same base keys, the same JSON
    # (orjson's compact form), written in the order they were logged.
    assert any(line.get("logger") == "uvicorn.error" for line in lines)
    for raw, line in zip(text.splitlines(), lines, strict=True):
        assert {"event", "level", "timestamp"} <= line.keys(), raw
        assert raw == orjson.dumps(line).decode(), raw
    stamps = [line["timestamp"] for line in lines]
    assert stamps == sorted(stamps)

    ours = set(sent) - {"req-made-up"}
    by_request: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        rid = line.get("request_id")
        if rid is None:
            assert (line.get("logger") in LIFECYCLE_LOGGERS
                    or line["event"] in LIFECYCLE_EVENTS), f"line without request id: {line}"
            continue
        by_request.setdefault(rid, []).append(line)
    others = {rid: [x["path"] for x in ls if x["event"] == "request"]
              for rid, ls in by_request.items() if rid not in ours}
    # The insane id was replaced by one the gateway made; the rest are start-up probes.
    assert sorted(paths[0] for paths in others.values()).count("/api/x") == 1
    assert all(len(rid) == 32 and len(paths) == 1 for rid, paths in others.items())
    # The retries and the circuit were logged inside their request, with its id.
    flaky_events = [line["event"] for line in by_request["req-flaky"]]
    assert flaky_events.count("upstream_retry") == 2 and "request" in flaky_events

    access = {rid: next(x for x in ls if x["event"] == "request")
              for rid, ls in by_request.items()}
    ok = access["req-ok"]
    assert ok["route"] == "api" and ok["status"] == 200 and ok["method"] == "GET"
    # The key is named by its id, which is not secret; the tenant is the key's.
    assert ok["tenant"] == "acme" and ok["credential"] == key_id
    assert ok["upstream"] == backend.url and ok["trace_id"] == TRACE_ID
    assert ok["duration_ms"] > 0 and ok["level"] == "info" and ok["timestamp"]
    for key in ("tenant", "cache", "rate_limit_remaining"):
        assert key in ok  # same keys on every access line; None until a policy sets them
    assert access["req-flaky"]["status"] == 502 and access["req-flaky"]["tenant"] == "acme"
    refused = access["req-bad-key"]
    assert refused["status"] == 401 and refused["route"] == "api" and refused["tenant"] is None
    lost = access["req-404"]
    assert lost["status"] == 404 and lost["route"] is None and lost["trace_id"] == TRACE_ID


# -- the access line's own path (JSON to the buffer, as `gateway serve` writes it) -------

ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


@pytest.fixture
def server_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.BytesIO]:
    """configure_logging as `gateway serve` does it, into a buffer; restored afterwards."""
    import gateway.logging as gl

    out = io.BytesIO()
    monkeypatch.setattr(sys, "stderr", SimpleNamespace(buffer=out, isatty=lambda: False,
                                                       write=lambda s: None))
    saved = (gl._buffered, gl._access_direct, gl._access_enabled, structlog.get_config())
    root_handlers = logging.getLogger().handlers[:]
    gl.configure_logging("info", "json", buffered=True)
    try:
        yield out
    finally:
        gl._buffered, gl._access_direct, gl._access_enabled, config = saved
        structlog.configure(**config)
        logging.getLogger().handlers[:] = root_handlers


def access_line(**fields: Any) -> dict[str, Any]:
    base = {"request_id": "r1", "method": "GET", "path": "/v1/x", "status": 200,
            "duration_ms": 1.5, "route": "api", "tenant": "acme", "upstream": None,
            "cache": None, "rate_limit_remaining": 3, "trace_id": None}
    return {**base, **fields}


def written(out: io.BytesIO) -> list[dict[str, Any]]:
    from gateway.logging import flush_logs

    flush_logs()
    return [json.loads(line) for line in out.getvalue().decode().splitlines()]


def test_access_lines_are_redacted_like_every_other_line(server_logging: io.BytesIO) -> None:
    from gateway.logging import write_access

    write_access(access_line())
    write_access(access_line(path="/v1/items/gw_abc_SECRETpath"))
    write_access(access_line(path="/v1/x/BEARER SECRETtoken.part"))  # any case
    write_access(access_line(request_id="Bearer SECRETid"))
    structlog.get_logger("gateway.other").info("other", path="/v1/items/gw_abc_SECRETother")
    lines = written(server_logging)
    assert b"SECRET" not in server_logging.getvalue()
    plain, key_path, bearer_path, bearer_id, other = lines
    assert plain == {**access_line(), "event": "request", "level": "info",
                     "timestamp": plain["timestamp"]}
    assert re.fullmatch(ISO_UTC, plain["timestamp"]) and re.fullmatch(ISO_UTC,
                                                                     other["timestamp"])
    assert key_path["path"] == "/v1/items/[REDACTED]"
    assert bearer_path["path"] == "/v1/x/BEARER [REDACTED]"
    assert bearer_id["request_id"] == "Bearer [REDACTED]"
    assert other["path"] == "/v1/items/[REDACTED]"


def test_access_lines_follow_the_level(monkeypatch: pytest.MonkeyPatch,
                                       server_logging: io.BytesIO) -> None:
    import gateway.logging as gl

    gl.configure_logging("warning", "json", buffered=True)
    gl.write_access(access_line())
    assert written(server_logging) == []


def test_access_fields_never_carry_a_secret_name() -> None:
    """The fast path redacts only a line whose text holds a trigger: a secret-named field
    whose value holds none would pass it, so no access field may have such a name."""
    from gateway.logging import SECRET_FIELDS
    from gateway.middleware import _access_fields

    route = SimpleNamespace(name="api")
    ctx = RequestContext(request_id="r", config=None, route=route,  # type: ignore[arg-type]
                         path_params={}, method="GET", path="/x", query=b"",
                         headers=[], client_ip="", started=0.0,
                         principal=Principal("acme", "k1", "api_key"))
    scope = {"method": "GET", "path": "/x", "headers": [], "state": {}}
    for fields in (_access_fields(scope, ctx, 200, 0.1), _access_fields(scope, None, 404, 0.1)):
        assert not {k.lower() for k in fields} & SECRET_FIELDS
        assert not {"event", "level", "timestamp"} & set(fields)


def test_buffered_lines_from_threads_are_each_written_once_and_whole() -> None:
    """Lines come from the event loop and from worker threads (a config check), and
    flushes from both: none may be lost, doubled or split, however the threads switch."""
    from gateway.logging import BufferedLineLogger

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    out = io.BytesIO()
    buffered = BufferedLineLogger(out, limit=512)  # a flush every few lines
    threads, per_thread = 4, 20000

    def write(n: int) -> None:
        for i in range(per_thread):
            if i % 2:
                buffered.write_line(b'{"t":%d,"i":%d}\n' % (n, i))
            else:
                buffered.info(b'{"t":%d,"i":%d}' % (n, i))
            if i % 97 == 0:
                buffered.flush()

    try:
        workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(previous)
    buffered.flush()
    lines = out.getvalue().decode().splitlines()
    seen = sorted((d["t"], d["i"]) for d in map(json.loads, lines))  # a split line fails
    assert seen == [(n, i) for n in range(threads) for i in range(per_thread)]
