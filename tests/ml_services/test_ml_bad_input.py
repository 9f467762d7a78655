"""Bad requests get 4xx problem+json naming the problem, and the service stays healthy."""

from __future__ import annotations

import httpx
import pytest
from ml_harness import LIMITS

OVER = int(LIMITS["max_texts"]) + 1
LONG = "a" * (int(LIMITS["max_chars"]) + 1)

CASES = [
    # (id, raw body, expected status, expected type slug, words expected in detail)
    ("malformed-json", b'{"text": ', 400, "malformed-json", ""),
    ("invalid-utf8", b'{"text": "caf\xe9"}', 400, "invalid-utf8", "UTF-8"),
    ("not-an-object", b'["a"]', 422, "invalid-request", "object"),
    ("no-text", b'{"foo": 1}', 422, "invalid-request", "foo"),
    ("text-not-string", b'{"text": 5}', 422, "invalid-request", "string"),
    ("texts-not-list", b'{"texts": "abc"}', 422, "invalid-request", "list"),
    ("item-not-string", b'{"texts": ["a", null]}', 422, "invalid-request", "item 1"),
    ("empty-list", b'{"texts": []}', 422, "invalid-request", "empty"),
    ("both-fields", b'{"text": "a", "texts": ["b"]}', 422, "invalid-request", "either"),
    ("task-not-string", b'{"text": "a", "task": 1}', 422, "invalid-request", "task"),
    ("too-many-texts", f'{{"texts": {["x"] * OVER}}}'.replace("'", '"').encode(), 413,
     "too-many-texts", f"max_texts={LIMITS['max_texts']}"),
    ("too-long-text", f'{{"texts": ["ok", "{LONG}"]}}'.encode(), 422, "text-too-long",
     f"max_chars={LIMITS['max_chars']}"),
    ("body-too-large", b'{"text": "' + b"a" * 5000 + b'"}', 413, "body-too-large",
     f"max_body_bytes={LIMITS['max_body_bytes']}"),
]


@pytest.fixture(params=["sentiment_url", "classify_url"])
def url(request: pytest.FixtureRequest) -> str:
    value: str = request.getfixturevalue(request.param)
    return value


@pytest.mark.parametrize(("body", "status", "slug", "detail"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_body_is_a_problem(url: str, body: bytes, status: int, slug: str,
                               detail: str) -> None:
    r = httpx.post(url + "/predict", content=body, headers={
        "Content-Type": "application/json", "X-Request-ID": "bad-1"})
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == "bad-1"
    problem = r.json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    assert problem["title"]
    assert detail in problem["detail"]
    assert problem["request_id"] == "bad-1"
    assert httpx.get(url + "/readyz").status_code == 200
    ok = httpx.post(url + "/predict", json={"text": "fine"})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1


def test_chunked_body_over_the_limit_is_refused(url: str) -> None:
    def chunks() -> object:
        for _ in range(10):
            yield b"a" * 1000

    r = httpx.post(url + "/predict", content=chunks())  # type: ignore[arg-type]
    assert r.status_code == 413
    assert r.json()["type"] == "/problems/body-too-large"


def test_unknown_path_and_wrong_method(url: str) -> None:
    r = httpx.get(url + "/nowhere")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/not-found" and r.json()["request_id"]
    r = httpx.get(url + "/predict")
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"
    assert "POST" in r.headers["allow"]


def test_health_endpoints_and_metrics(url: str) -> None:
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(url + "/readyz").json() == {"status": "ready"}
    text = httpx.get(url + "/metrics").text
    for name in ("ml_inference_seconds_bucket", "ml_batch_size_texts_bucket",
                 "ml_texts_processed_total", "ml_model_calls_total", "ml_errors_total"):
        assert name in text
