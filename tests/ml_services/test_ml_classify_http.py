"""The classification service end to end, over real HTTP, with the real moderation model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from ml_harness import metric, serve_app

from ml_services.classify import TASKS, ClassifyRunner, ClassifySettings
from ml_services.server import create_app

PROFANE = "you are a fucking idiot, shit"
CLEAN = "Thank you, have a lovely day."


def predict(url: str, body: object) -> httpx.Response:
    return httpx.post(url + "/predict", json=body)


def test_profanity_is_offensive_and_clean_text_is_ok(classify_url: str) -> None:
    r = predict(classify_url, {"texts": [PROFANE, CLEAN, "what the hell", "nice weather"]})
    assert r.status_code == 200
    body = r.json()
    assert [p["label"] for p in body["predictions"]] == ["offensive", "ok", "offensive", "ok"]
    assert body["predictions"][0]["probability"] > 0.9 > 0.1 > body["predictions"][1]["probability"]
    assert body["model"] == {"name": "profanity-check", "version": "1.9.1"}
    assert body["task"] == "moderation"
    assert r.headers["x-model-version"] == "profanity-check/1.9.1"


def test_task_is_selected_by_the_request(classify_url: str) -> None:
    r = predict(classify_url, {"text": CLEAN, "task": "moderation"})
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] == "ok"
    r = predict(classify_url, {"text": CLEAN, "task": "intent"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert "moderation" in r.json()["detail"]


def test_concurrent_requests_are_batched_and_each_gets_its_own_answers(
    classify_url: str,
) -> None:
    calls_before = metric(classify_url, "ml_model_calls_total")

    async def one(client: httpx.AsyncClient, i: int) -> None:
        texts = [f"{CLEAN} {i}", f"{PROFANE} {i}"] if i % 2 else [f"{PROFANE} {i}"]
        expected = ["ok", "offensive"] if i % 2 else ["offensive"]
        r = await client.post("/predict", json={"texts": texts})
        assert [p["label"] for p in r.json()["predictions"]] == expected

    async def run() -> None:
        async with httpx.AsyncClient(base_url=classify_url) as client:
            await asyncio.gather(*(one(client, i) for i in range(50)))

    asyncio.run(run())
    calls = metric(classify_url, "ml_model_calls_total") - calls_before
    assert 1 <= calls < 50, f"{calls} model calls for 50 concurrent requests: no batching"


class Fragile:
    """A task model that breaks on one input, to check that only its request fails."""

    name = "fragile"
    version = "0"

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        if "BOOM" in texts:
            raise ValueError("cannot")
        return [{"label": t} for t in texts]


def test_one_bad_input_fails_only_its_own_request_in_a_batch() -> None:
    settings = ClassifySettings(tasks=["moderation", "fragile"], max_wait_ms=50)
    runner = ClassifyRunner(settings, registry={**TASKS, "fragile": lambda s: Fragile()})
    with serve_app(create_app(runner, settings)) as url:

        async def run() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url) as client:
                return await asyncio.gather(*(
                    client.post("/predict", json={"texts": [t], "task": "fragile"})
                    for t in ["a", "b", "BOOM", "c", "d"]
                ))

        answers = asyncio.run(run())
        assert [r.status_code for r in answers] == [200, 200, 500, 200, 200]
        assert [r.json()["predictions"][0]["label"] for i, r in enumerate(answers) if i != 2] \
            == ["a", "b", "c", "d"]
        assert answers[2].headers["content-type"] == "application/problem+json"
        assert answers[2].json()["status"] == 500
        assert httpx.get(url + "/readyz").status_code == 200
        assert metric(url, "ml_errors_total") == 1


def test_console_command_serves_moderation(
    spawn_service: Callable[[str, dict[str, str]], str],
) -> None:
    url = spawn_service("ml_services.classify", {"ML_CLASSIFY_MODEL_VERSION": "1.9.1-b"})
    r = predict(url, {"text": PROFANE})
    assert r.json()["predictions"][0]["label"] == "offensive"
    assert r.headers["x-model-version"] == "profanity-check/1.9.1-b"
