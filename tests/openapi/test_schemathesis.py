"""schemathesis against a real gateway in front of the real bundled services.

Every check (no 5xx, documented statuses, headers and content types, bodies matching
their schemas, invalid input refused, auth enforced, 405 for undeclared methods) over
examples, coverage and fuzzing of every operation of /openapi.json, bounded in examples
and time so the run stays at seconds.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bundled import BundledGateway

HERE = Path(__file__).parent
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BundledGateway]:
    gw = BundledGateway(tmp_path_factory.mktemp("schemathesis"),
                        tenants={"acme": {"tier": "roomy", "routes": ["*"]}},
                        tiers={"roomy": {"rate": "100000/minute", "max_in_flight": 64}})
    gw.start()
    yield gw
    gw.stop()


def run_schemathesis(gw: BundledGateway, credential: str, *extra: str
                     ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(HERE / "schemathesis.toml"), "run",
         gw.url + "/openapi.json", "--checks", "all", "--max-examples", "40",
         "--seed", "20261202", "--generation-database", "none",
         "--request-timeout", "15", "--no-color", "-H", f"Authorization: Bearer {credential}",
         # The same credential in X-API-Key too: schemathesis fills in every security
         # scheme, and two credentials that differ are a 400 by design.
         "-H", f"X-API-Key: {credential}", *extra],
        capture_output=True, text=True, timeout=120, cwd=gw.workdir,
    )


def _report(result: subprocess.CompletedProcess[str]) -> str:
    # Long generated bodies make the full report huge: keep its head and its summary.
    out = result.stdout
    if len(out) > 20_000:
        out = out[:10_000] + "\n[...]\n" + out[-10_000:]
    return out + result.stderr[-2_000:]


def test_schemathesis_finds_nothing_with_an_api_key(bundled: BundledGateway) -> None:
    # The admin API takes its own token, never a tenant's (tests/test_admin_api.py).
    result = run_schemathesis(bundled, bundled.credentials["acme"].api_key,
                              "--exclude-tag", "admin")
    assert result.returncode == 0, _report(result)
    assert "generated" in result.stdout  # it ran cases, not just loaded the document


def test_schemathesis_finds_nothing_with_an_oauth2_token(bundled: BundledGateway) -> None:
    creds = bundled.credentials["acme"]
    token = httpx.post(bundled.url + "/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(creds.client_id, creds.client_secret)).json()["access_token"]
    result = run_schemathesis(bundled, token, "--include-tag", "inference",
                              "--max-examples", "20")
    assert result.returncode == 0, _report(result)
