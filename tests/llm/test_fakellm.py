"""The LLM routes against a third-party OpenAI-compatible server: fakellm (PyPI), run as
its own process. Its JSON answers report usage and its streams do not, so it drives
both sides of the token accounting; its scripted 429 drives a fallback across two
implementations (fakellm first, bench/fake_openai.py second)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.auth.conftest import make_key
from tests.conftest import write_routes
from tests.llm.conftest import Provider, bearer
from tests.llm.test_tokens import estimate_of, metric, remaining, settled, wait_metric
from tests.processes import wait_http
from tests.servers import free_port

FAKELLM_RULES = {"version": 1, "defaults": {"fallback": "deterministic_echo"}, "rules": [
    {"name": "busy", "when": {"header.x-test-scenario": "rate_limit"},
     "respond": {"status": 429, "error": "Rate limit exceeded (mock)"}},
    {"name": "hello", "when": {"messages_contain": "hello"},
     "respond": {"content": "Hi there from fakellm."}},
]}


@pytest.fixture
def fakellm(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("fakellm", path=str(Path(sys.executable).parent))
    assert exe is not None, "pip install fakellm (the test extra)"
    (tmp_path / "fakellm.yaml").write_text(yaml.safe_dump(FAKELLM_RULES))
    port = free_port()
    proc = subprocess.Popen([exe, "serve", "--port", str(port), "--config",
                             str(tmp_path / "fakellm.yaml")], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/v1/models", proc=proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_fakellm_behind_the_gateway(tmp_path, fakellm, start_gateway):
    backup = Provider("backup")
    try:
        write_routes(tmp_path / "routes.yaml", {
            "fakellm": {"targets": [{"url": fakellm}]},
            "backup": {"targets": [{"url": backup.url}]},
        }, [{"name": "chat", "match": {"path": "/v1/chat/completions", "methods": ["POST"]},
             "llm": {"api": "chat"}}],
            models={"m": {"serve": [{"upstream": "fakellm", "model": "fake-upstream-m"},
                                    {"upstream": "backup"}]}})
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "tenants.yaml").write_text(yaml.safe_dump(
            {"version": 1, "tenants": {"acme": {"tier": "t"}}}))
        (tmp_path / "policies" / "tiers.yaml").write_text(yaml.safe_dump(
            {"version": 1, "tiers": {"t": {"tokens": "1000/day"}}}))
        key = make_key(tmp_path / "data", "acme")[0]
        gw = start_gateway()
        body = {"model": "m", "max_tokens": 20,
                "messages": [{"role": "user", "content": "hello there"}]}
        r = gw.client.post("/v1/chat/completions", headers=bearer(key), json=body)
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["model"] == "fake-upstream-m"  # it was asked under its own name
        assert answer["choices"][0]["message"]["content"] == "Hi there from fakellm."
        usage = answer["usage"]
        wait_metric(gw, "gateway_llm_calls_total", 1)
        assert metric(gw, "gateway_llm_tokens_total", kind="prompt") == usage["prompt_tokens"]
        assert (metric(gw, "gateway_llm_tokens_total", kind="completion")
                == usage["completion_tokens"])
        left = remaining(r) + estimate_of(body) - usage["total_tokens"]  # after settling
        # A stream without a usage chunk: passed through whole, counted as missing, and
        # the reservation stands in for the usage (docs/llm.md, Token limits).
        streamed = {**body, "stream": True}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", headers=bearer(key),
                          json=streamed, timeout=10) as s:
            assert s.status_code == 200 and remaining(s) == left - estimate_of(streamed)
            text = s.read().decode()
        assert "Hi" in text and text.rstrip().endswith("data: [DONE]")
        assert wait_metric(gw, "gateway_llm_calls_total", 1, usage="missing") == 1
        settled(gw, 2)
        r = gw.client.post("/v1/chat/completions", headers=bearer(key), json=body)
        assert remaining(r) == left - estimate_of(streamed) - estimate_of(body)
        # fakellm's 429 (no Retry-After: parked 1 s): the backup implementation answers.
        r = gw.client.post("/v1/chat/completions", json=body,
                           headers={**bearer(key), "X-Test-Scenario": "rate_limit"})
        assert r.status_code == 200 and r.headers["x-served-by"] == "backup"
        assert backup.fake.requests[-1]["body"]["model"] == "m"
    finally:
        backup.server.stop()
