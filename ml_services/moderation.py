"""The `moderation` task: offensive-language detection with alt-profanity-check.

Use `ProfanityModeration` through the classification service's task registry. The model is
a calibrated linear SVM over a TF-IDF vectorizer, both shipped inside the package. sklearn
has a large fixed cost per call, so `predict` takes whole batches, and the calibrated SVM's
scores are computed by `calibrated_linear` (checked against sklearn at load).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
import sklearn  # type: ignore[import-untyped]

from ml_services.calibrated_linear import FloatArray, fast_positive_proba
from ml_services.drift import LENGTH, OOV, DriftProbe, Feature, oov_share
from ml_services.model_card import artefact_card

MODEL_NAME = "profanity-check"

# Texts the fast path is checked on at load; it must agree with sklearn on all of them.
_PROBE = ["you are a fucking idiot", "have a lovely day", "what the hell is this shit",
          "the meeting is at 3pm", "", "I love this, it's wonderful!", "damn", "go to hell"]


class ProfanityModeration:
    """Label each text `offensive` or `ok`, with the probability that it is offensive."""

    def __init__(self, threshold: float = 0.5, version: str | None = None) -> None:
        # Imported here, not at module top: the import is what loads (unpickles) the model,
        # and it must happen once, at service start-up.
        from profanity_check import profanity_check  # type: ignore[import-untyped]

        self._vectorizer: Any = profanity_check.vectorizer
        model: Any = profanity_check.model
        self._threshold = threshold
        self.name = MODEL_NAME
        self.version = version or package_version("alt-profanity-check")
        self._proba = self._choose_scorer(model)
        self.card = artefact_card(
            "alt-profanity-check", "profanity_check/data/model.joblib",
            "linear SVM over TF-IDF; its README: trained on ~200k human-labelled "
            "clean and profane texts")

    def _choose_scorer(self, model: Any) -> Callable[[Any], FloatArray]:
        def stock(x: Any) -> FloatArray:
            proba: FloatArray = model.predict_proba(x)[:, 1]
            return proba

        fast = fast_positive_proba(model)
        if fast is None:
            return stock
        x = self._vectorizer.transform(_PROBE)
        return fast if np.allclose(fast(x), stock(x), rtol=0, atol=1e-9) else stock

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        # Thread-local sklearn config: skip re-validating our own well-formed inputs.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            probabilities: list[float] = self._proba(self._vectorizer.transform(texts)).tolist()
        threshold = self._threshold
        return [
            {"label": "offensive" if p >= threshold else "ok", "probability": round(p, 6)}
            for p in probabilities
        ]

    def drift_probe(self, reference: Any = None) -> DriftProbe:
        """Length, the share of words outside the TF-IDF vocabulary, and the label."""
        vocabulary = self._vectorizer.vocabulary_

        def values(text: str, prediction: dict[str, Any]) -> tuple[Any, ...]:
            return len(text), oov_share(text, vocabulary), prediction["label"]

        labels = Feature("label", labels=("ok", "offensive"))
        return DriftProbe((LENGTH, OOV, labels), values,
                          key=f"profanity-check {self._threshold}")
