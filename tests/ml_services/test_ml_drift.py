"""Drift monitoring: PSI computed right, and the real services' ml_drift_psi staying low on
in-distribution traffic and crossing the alert's 0.2 on shifted traffic."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from ml_harness import LIMITS, serve_app

from bench.drift_corpus import in_distribution, shifted
from ml_services.classify import ClassifyRunner, ClassifySettings
from ml_services.drift import LENGTH, DriftMonitor, DriftProbe, Feature, load_references, psi
from ml_services.sentiment import SentimentRunner, SentimentSettings
from ml_services.server import create_app

THRESHOLD = 0.2  # deploy/prometheus/alerts.yml, MlDriftHigh
WINDOW = 100
# Room for whole batches of held-out texts (the shared fixtures' limit is 8 texts).
DRIFT = {**LIMITS, "max_texts": 64, "max_chars": 4000, "max_body_bytes": 1 << 20,
         "drift_window_texts": WINDOW, "drift_min_texts": WINDOW // 2}


def test_psi_has_the_textbook_value() -> None:
    # Shares 0.5/0.5 against 0.25/0.75: 0.25 ln 2 + 0.25 ln 1.5 = 0.27465 (large counts, so
    # the +0.5 smoothing is negligible).
    assert psi([500_000, 500_000], [250_000, 750_000]) == pytest.approx(0.274653, abs=1e-5)
    assert psi([30, 70], [30, 70]) == 0.0
    # An empty reference bin costs a bounded amount, not infinity.
    assert 0.2 < psi([100, 0], [50, 50]) < 5


def test_the_window_forgets_old_texts_and_a_learned_reference_is_frozen() -> None:
    probe = DriftProbe((LENGTH, Feature("label", labels=("a", "b"))),
                       lambda text, p: (len(text), p), key="test")
    monitor = DriftMonitor(probe, window_texts=100, min_texts=50)  # learns its reference
    monitor.observe(["short"] * 100, ["a"] * 100)
    assert monitor.source == "first_requests" and monitor.reference_texts == 100
    assert monitor.psi() is None  # the window is still empty
    monitor.observe(["short"] * 100, ["a"] * 100)
    assert max(monitor.psi().values()) == 0.0  # type: ignore[union-attr]
    monitor.observe(["x" * 300] * 100, ["b"] * 100)  # replaces the whole window
    assert monitor.window_size == 100
    assert monitor.window_counts()[1] == [0, 100, 0]
    assert min(monitor.psi().values()) > 2  # type: ignore[union-attr]


def drift_values(url: str, task: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics").text
    return {m[0]: float(m[1]) for m in re.findall(
        rf'^ml_drift_psi{{feature="(\w+)",task="{task}"}} (\S+)$', text, re.M)}


def feed(url: str, task: str, texts: list[str]) -> None:
    for i in range(0, len(texts), 50):
        httpx.post(url + "/predict", json={"texts": texts[i:i + 50], "task": task},
                   timeout=60).raise_for_status()


def feed_embeddings(url: str, texts: list[str]) -> None:
    for i in range(0, len(texts), 16):  # the shared embed service's max_texts
        httpx.post(url + "/v1/embeddings", json={"input": texts[i:i + 16]},
                   timeout=60).raise_for_status()


@pytest.fixture(scope="module")
def drift_services() -> Iterator[dict[str, str]]:
    sentiment = SentimentSettings(**DRIFT)  # type: ignore[arg-type]
    classify = ClassifySettings(**DRIFT)  # type: ignore[arg-type]
    with serve_app(create_app(SentimentRunner(sentiment), sentiment)) as s_url, \
            serve_app(create_app(ClassifyRunner(classify), classify)) as c_url:
        yield {"sentiment": s_url, "moderation": c_url}


@pytest.mark.parametrize(("task", "shift", "feature"), [
    ("sentiment", "negative", "label"), ("sentiment", "language", "oov"),
    ("moderation", "language", "oov"), ("moderation", "long", "length"),
])
def test_shifted_traffic_raises_psi_above_the_alert_threshold(
        drift_services: dict[str, str], task: str, shift: str, feature: str) -> None:
    url = drift_services[task]
    metrics = httpx.get(url + "/metrics").text
    assert f'ml_drift_reference_texts{{source="bundled",task="{task}"}} 400.0' in metrics
    feed(url, task, in_distribution(WINDOW, seed=3))
    calm = drift_values(url, task)
    assert calm and max(calm.values()) < THRESHOLD, calm
    feed(url, task, shifted(shift, WINDOW, seed=4))
    assert drift_values(url, task)[feature] > THRESHOLD


def test_embedding_centroid_distance_drifts_with_another_language(
        embed_url: str) -> None:
    # The shared embed service (window 100, see conftest): whatever other tests sent, 100
    # new texts fill its whole window.
    feed_embeddings(embed_url, in_distribution(WINDOW, seed=5))
    calm = drift_values(embed_url, "embedding")
    assert set(calm) == {"length", "centroid"} and max(calm.values()) < THRESHOLD, calm
    feed_embeddings(embed_url, shifted("language", WINDOW, seed=6))
    assert drift_values(embed_url, "embedding")["centroid"] > THRESHOLD


def test_the_bundled_reference_is_what_its_generator_makes() -> None:
    # The cheap models only (the embeddings take seconds): a changed corpus, bin or
    # probe without `python bench/make_drift_reference.py` shows here.
    from bench.make_drift_reference import REFERENCE_TEXTS, SEED, counts
    from ml_services.moderation import ProfanityModeration
    from ml_services.sentiment_model import VaderSentiment

    texts = in_distribution(REFERENCE_TEXTS, SEED)
    references = load_references()
    for task, model in (("sentiment", VaderSentiment()), ("moderation", ProfanityModeration())):
        probe = model.drift_probe()
        assert references[task]["key"] == probe.key
        assert references[task]["features"] == counts(probe, texts, model.predict(texts))
