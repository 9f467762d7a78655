"""Fixtures for the ML services' tests.

`sentiment_url` / `classify_url`: the real apps served by uvicorn (uvloop + httptools, as
in production) in a thread on a free 127.0.0.1 port; `spawn_service`: the service's own
command in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from ml_harness import LIMITS, free_port, serve_app

from ml_services.classify import ClassifyRunner, ClassifySettings
from ml_services.embed import EmbedRunner, EmbedSettings, shipped_intents
from ml_services.sentiment import SentimentRunner, SentimentSettings
from ml_services.server import create_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sentiment_url() -> Iterator[str]:
    settings = SentimentSettings(**LIMITS)  # type: ignore[arg-type]
    with serve_app(create_app(SentimentRunner(settings), settings)) as url:
        yield url


@pytest.fixture(scope="session")
def classify_url() -> Iterator[str]:
    settings = ClassifySettings(**LIMITS)  # type: ignore[arg-type]
    with serve_app(create_app(ClassifyRunner(settings), settings)) as url:
        yield url


@pytest.fixture(scope="session")
def embed_intents_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embed service's intents file: a copy of the shipped one (the reload test edits
    it and puts it back)."""
    path = tmp_path_factory.mktemp("intents") / "intents.yaml"
    path.write_bytes(shipped_intents().read_bytes())
    return path


@pytest.fixture(scope="session")
def embed_url(embed_intents_file: Path) -> Iterator[str]:
    # Limits that admit the reference texts (one is truncated at 256 tokens).
    limits = {**LIMITS, "max_texts": 16, "max_chars": 4000, "max_body_bytes": 65536}
    # A small drift window: test_ml_drift fills it with its own texts.
    settings = EmbedSettings(**limits, intents_file=embed_intents_file,  # type: ignore[arg-type]
                             intents_reload_interval=0.05, drift_window_texts=100,
                             drift_min_texts=50)
    with serve_app(create_app(EmbedRunner(settings), settings)) as url:
        yield url


@pytest.fixture
def spawn_service() -> Iterator[Callable[[str, dict[str, str]], str]]:
    """Start `python -m <module> --port P` with extra env; yield a starter returning its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(module: str, env: dict[str, str]) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env={**os.environ, **env},
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{module} exited with {proc.returncode}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"{module} did not become ready")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
