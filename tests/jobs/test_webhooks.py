"""Signed webhooks to a real HTTP receiver that verifies them with the documented code:
delivery, secret rotation, tampering and replay refused, retries into the dead letter."""

from __future__ import annotations

import time

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.cli import main
from gateway.jobs.signing import ID_HEADER, SIGNATURE_HEADER, SignatureError, sign, verify
from gateway.jobs.webhooks import retry_delay
from tests.jobs.conftest import TENANTS, write_job_setup
from tests.servers import ThreadedServer

ASYNC = {"Prefer": "respond-async"}


class Receiver:
    """Accepts a delivery only if `verify` passes with the secrets it was given."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.accepted: list[dict] = []
        self.refused: list[str] = []
        self.down_hits = 0
        app = Starlette(routes=[Route("/hooks/ok", self.ok, methods=["POST"]),
                                Route("/hooks/down", self.down, methods=["POST"])])
        self.server = ThreadedServer(app).start()
        self.url = self.server.url

    async def ok(self, request: Request) -> Response:
        body = await request.body()
        header = request.headers.get(SIGNATURE_HEADER, "")
        try:
            verify(header, body, self.secrets)
        except SignatureError as exc:
            self.refused.append(str(exc))
            return Response("bad signature", 400)
        self.accepted.append({"body": body, "signature": header,
                              "id": request.headers[ID_HEADER]})
        return Response(status_code=204)

    async def down(self, request: Request) -> Response:
        self.down_hits += 1
        return Response("maintenance", 503)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.stop()


def rotate(tmp_path, monkeypatch, capsys, tenant: str = "acme") -> str:
    monkeypatch.setenv("GATEWAY_ROUTES_FILE", str(tmp_path / "routes.yaml"))
    monkeypatch.setenv("GATEWAY_POLICIES_DIR", str(tmp_path / "policies"))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    capsys.readouterr()
    assert main(["webhooks", "rotate", "--tenant", tenant, "--grace", "1h"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("whsec_") and len(secret) > 40
    return secret


@pytest.fixture
def gw(tmp_path, backend, receiver, start_jobs):
    tenants = {**TENANTS, "acme": {"tier": "standard",
                                   "webhooks": {"allowed_urls": [receiver.url + "/hooks/"]}}}
    write_job_setup(tmp_path, backend.url, tenants=tenants)
    return start_jobs(jobs_workers=2, webhook_backoff=0.05, webhook_max_backoff=0.1,
                      webhook_max_attempts=3)


def _submit(gw, as_tenant, callback: str) -> str:
    r = gw.client.post("/v1/predict/echo", content=b'{"text": "hook"}',
                       headers={**as_tenant("acme"), **ASYNC, "Callback-URL": callback})
    assert r.status_code == 202, r.text
    return r.headers["location"]


def _wait(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_delivery_verifies_and_rotation_keeps_both_secrets_valid(
        gw, receiver, tmp_path, monkeypatch, capsys, as_tenant):
    first = rotate(tmp_path, monkeypatch, capsys)
    receiver.secrets = [first]
    time.sleep(0.4)  # the gateway's credential snapshot sees the new record
    location = _submit(gw, as_tenant, receiver.url + "/hooks/ok")
    _wait(lambda: receiver.accepted)
    delivery = receiver.accepted[0]
    payload = orjson.loads(delivery["body"])
    assert payload["type"] == "job.succeeded"
    assert payload["job"]["id"] == delivery["id"] == location.rsplit("/", 1)[1]
    assert payload["job"]["result"]["body"]["body"] == '{"text": "hook"}'
    _wait(lambda: gw.client.get(location, headers=as_tenant("acme")).json()["webhook"]
          ["state"] == "delivered")
    view = gw.client.get(location, headers=as_tenant("acme")).json()["webhook"]
    assert view == {"url": receiver.url + "/hooks/ok", "state": "delivered", "attempts": 1,
                    "last_error": None}

    second = rotate(tmp_path, monkeypatch, capsys)
    assert second != first
    time.sleep(0.4)
    _submit(gw, as_tenant, receiver.url + "/hooks/ok")
    _wait(lambda: len(receiver.accepted) == 2)
    header, body = receiver.accepted[1]["signature"], receiver.accepted[1]["body"]
    assert header.count("v1=") == 2  # during the grace period: one per valid secret
    verify(header, body, [second])
    verify(header, body, [first])
    assert not receiver.refused

    # The documented check refuses an altered body, an old delivery and a wrong secret.
    with pytest.raises(SignatureError, match="altered body"):
        verify(header, body.replace(b"hook", b"h00k"), [second])
    timestamp = int(header.split(",")[0].removeprefix("t="))
    with pytest.raises(SignatureError, match="tolerance"):
        verify(header, body, [second], now=timestamp + 301)
    verify(header, body, [second], now=timestamp + 299)
    with pytest.raises(SignatureError):
        verify(header, body, ["whsec_someone_else"])
    with pytest.raises(SignatureError):
        verify("v1=abc", body, [second])


def test_a_receiver_that_stays_down_gets_retries_then_the_job_is_dead_lettered(
        gw, receiver, tmp_path, monkeypatch, capsys, as_tenant):
    rotate(tmp_path, monkeypatch, capsys)
    time.sleep(0.4)
    location = _submit(gw, as_tenant, receiver.url + "/hooks/down")
    _wait(lambda: gw.client.get(location, headers=as_tenant("acme")).json()["webhook"]
          ["state"] == "dead")
    job = gw.client.get(location, headers=as_tenant("acme")).json()
    assert job["status"] == "succeeded"  # the job did; only its delivery failed
    assert job["webhook"]["attempts"] == 3 and job["webhook"]["last_error"] == "answered 503"
    assert receiver.down_hits == 3
    dead = gw.client.get("/v1/jobs?webhook=dead", headers=as_tenant("acme")).json()["jobs"]
    assert [j["id"] for j in dead] == [job["id"]]
    metrics = gw.client.get("/metrics").text
    assert 'gateway_job_webhooks_total{result="dead"} 1.0' in metrics
    assert 'gateway_job_webhooks_total{result="retried"} 2.0' in metrics


def test_without_a_secret_nothing_is_sent_unsigned(gw, receiver, as_tenant):
    location = _submit(gw, as_tenant, receiver.url + "/hooks/ok")
    _wait(lambda: gw.client.get(location, headers=as_tenant("acme")).json()["webhook"]
          ["state"] == "dead")
    job = gw.client.get(location, headers=as_tenant("acme")).json()
    assert "no webhook secret" in job["webhook"]["last_error"]
    assert not receiver.accepted and not receiver.refused  # never called


def test_retry_delays_grow_exponentially_within_their_jitter_and_cap():
    for attempt, mean in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 600.0)]:
        low, high = retry_delay(attempt, 2.0, 600.0, 0.0), retry_delay(attempt, 2.0, 600.0,
                                                                       0.999999)
        assert low == pytest.approx(mean * 0.5) and high == pytest.approx(mean * 1.5, rel=1e-5)
    assert sign(["s"], 10, b"x") == sign(["s"], 10, b"x") != sign(["s"], 11, b"x")
