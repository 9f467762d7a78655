"""The models themselves: clean loading, and the fast paths equal to the stock code."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
from vaderSentiment import vaderSentiment as stock_vader  # type: ignore[import-untyped]

from ml_services.calibrated_linear import fast_positive_proba
from ml_services.moderation import ProfanityModeration
from ml_services.sentiment_model import VaderSentiment
from ml_services.vader_fast import FastVader


def test_models_load_without_inconsistent_version_warning() -> None:
    # A fresh interpreter: in this one the model may already be imported (loaded).
    code = (
        "import warnings; warnings.simplefilter('error');"
        "from ml_services.moderation import ProfanityModeration; ProfanityModeration();"
        "from ml_services.sentiment_model import VaderSentiment; VaderSentiment()"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::sklearn.exceptions.InconsistentVersionWarning",
         "-c", code], capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def generated_texts(n: int, seed: int = 3) -> list[str]:
    """Texts that exercise VADER's rules: negation, boosters, caps, 'but', idioms, emoji."""
    rnd = random.Random(seed)
    analyzer = stock_vader.SentimentIntensityAnalyzer()
    vocab = (rnd.sample(sorted(analyzer.lexicon), 300) + list(stock_vader.BOOSTER_DICT)
             + stock_vader.NEGATE + list(stock_vader.SPECIAL_CASES)
             + ["but", "no", "kind", "of", "least", "at", "very", "never", "so", "this",
                "without", "doubt", "nor", "or", "isn't", "😁", "💘", "the", "movie"])
    texts = []
    for _ in range(n):
        words = []
        for _ in range(rnd.randint(0, 14)):
            word = rnd.choice(vocab)
            roll = rnd.random()
            if roll < 0.1:
                word = word.upper()
            elif roll < 0.15:
                word += rnd.choice("!?.,:)")
            words.append(word)
        texts.append(" ".join(words) + rnd.choice(["", "!", "!!!", "??", " :)", "  "]))
    return texts


def test_fast_vader_scores_equal_the_stock_analyzer() -> None:
    stock = stock_vader.SentimentIntensityAnalyzer()
    fast = FastVader()
    texts = [*generated_texts(4000), "Catch utf-8 emoji such as 💘 and 💋 and 😁", "", "   "]
    mismatches = [t for t in texts if fast.polarity_scores(t) != stock.polarity_scores(t)]
    assert mismatches == []


def test_sentiment_thresholds_label_the_compound_score() -> None:
    model = VaderSentiment(positive_threshold=0.5, negative_threshold=-0.5)
    out = model.predict(["The food was good.", "I love this, it's wonderful!", "not good"])
    assert [p["label"] for p in out] == ["neutral", "positive", "neutral"]


def test_fast_moderation_scores_equal_sklearn() -> None:
    from profanity_check import profanity_check  # type: ignore[import-untyped]

    texts = [*generated_texts(500), "fuck off", "shit happens", "hello", ""]
    x = profanity_check.vectorizer.transform(texts)
    fast = fast_positive_proba(profanity_check.model)
    assert fast is not None
    assert np.allclose(fast(x), profanity_check.predict_prob(texts), rtol=0, atol=1e-12)
    served = [p["probability"] for p in ProfanityModeration().predict(texts)]
    assert np.allclose(served, profanity_check.predict_prob(texts), atol=1e-6)


def test_model_shape_it_does_not_know_keeps_sklearn() -> None:
    assert fast_positive_proba(object()) is None
