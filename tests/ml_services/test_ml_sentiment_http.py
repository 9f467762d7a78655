"""The sentiment service end to end, over real HTTP, with the real VADER model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from ml_harness import metric

POSITIVE = "I love this, it's wonderful!"
NEGATIVE = "This is terrible, I hate it."
NEUTRAL = "The meeting is at 3pm on Tuesday."


def predict(url: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(url + "/predict", json=body, headers=headers)


def labels(response: httpx.Response) -> list[str]:
    return [p["label"] for p in response.json()["predictions"]]


def test_known_texts_get_known_labels_in_order(sentiment_url: str) -> None:
    texts = [POSITIVE, NEGATIVE, NEUTRAL, "not good", "The food was not bad at all"]
    r = predict(sentiment_url, {"texts": texts})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert labels(r) == ["positive", "negative", "neutral", "negative", "positive"]
    first = r.json()["predictions"][0]
    assert first["compound"] == first["scores"]["compound"] > 0.5
    assert set(first["scores"]) == {"neg", "neu", "pos", "compound"}


def test_single_text_still_answers_a_list_and_names_the_model(sentiment_url: str) -> None:
    r = predict(sentiment_url, {"text": NEGATIVE}, **{"X-Request-ID": "req-42"})
    body = r.json()
    assert r.status_code == 200
    assert len(body["predictions"]) == 1 and body["predictions"][0]["label"] == "negative"
    assert body["model"] == {"name": "vader", "version": "3.3.2"}
    assert body["task"] == "sentiment"
    assert r.headers["x-model-version"] == "vader/3.3.2"
    assert r.headers["x-request-id"] == "req-42"


def test_insane_request_id_is_replaced(sentiment_url: str) -> None:
    r = predict(sentiment_url, {"text": "ok"}, **{"X-Request-ID": "x" * 500})
    assert r.status_code == 200
    assert 0 < len(r.headers["x-request-id"]) <= 128 and r.headers["x-request-id"] != "x" * 500


def test_concurrent_requests_are_batched_and_each_gets_its_own_answers(
    sentiment_url: str,
) -> None:
    kinds = [(POSITIVE, "positive"), (NEGATIVE, "negative"), (NEUTRAL, "neutral")]
    calls_before = metric(sentiment_url, "ml_model_calls_total")
    requests_before = metric(sentiment_url, "ml_predict_requests_total")

    async def one(client: httpx.AsyncClient, i: int) -> None:
        # Request i carries its own mix, in its own order, with a marker text.
        mix = [kinds[(i + k) % 3] for k in range(1 + i % 3)]
        texts = [f"{text} #{i}" for text, _ in mix]
        r = await client.post("/predict", json={"texts": texts})
        assert r.status_code == 200
        assert labels(r) == [label for _, label in mix]

    async def run() -> None:
        async with httpx.AsyncClient(base_url=sentiment_url) as client:
            await asyncio.gather(*(one(client, i) for i in range(50)))

    asyncio.run(run())
    calls = metric(sentiment_url, "ml_model_calls_total") - calls_before
    assert metric(sentiment_url, "ml_predict_requests_total") - requests_before == 50
    assert 1 <= calls < 50, f"{calls} model calls for 50 concurrent requests: no batching"
    assert metric(sentiment_url, "ml_batch_size_texts_count") >= calls


def test_canary_instance_with_its_own_version_and_thresholds(
    sentiment_url: str, spawn_service: Callable[[str, dict[str, str]], str],
) -> None:
    canary = spawn_service("ml_services.sentiment", {
        "ML_SENTIMENT_MODEL_VERSION": "3.3.2-canary",
        "ML_SENTIMENT_POSITIVE_THRESHOLD": "0.9",
        "ML_SENTIMENT_NEGATIVE_THRESHOLD": "-0.9",
    })
    mild = "The food was good."  # compound 0.4404
    stable = predict(sentiment_url, {"text": mild})
    tried = predict(canary, {"text": mild})
    assert labels(stable) == ["positive"] and labels(tried) == ["neutral"]
    assert tried.headers["x-model-version"] == "vader/3.3.2-canary"
    assert tried.json()["model"]["version"] == "3.3.2-canary"
    assert stable.json()["model"]["version"] == "3.3.2"
