"""The `moderation` task: offensive-language detection with alt-profanity-check.

Use `ProfanityModeration` through the classification service's task registry. The model is
a linear SVM (calibrated) over a TF-IDF vectorizer, both shipped inside the package; it is
fast only when given whole batches, which is why `predict` takes a list.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version as package_version
from typing import Any

MODEL_NAME = "profanity-check"


class ProfanityModeration:
    """Label each text `offensive` or `ok`, with the probability that it is offensive."""

    def __init__(self, threshold: float = 0.5, version: str | None = None) -> None:
        # Imported here, not at module top: the import is what loads (unpickles) the model,
        # and it must happen once, at service start-up.
        from profanity_check import profanity_check  # type: ignore[import-untyped]

        self._vectorizer: Any = profanity_check.vectorizer
        self._model: Any = profanity_check.model
        self._threshold = threshold
        self.name = MODEL_NAME
        self.version = version or package_version("alt-profanity-check")

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        probabilities: list[float] = (
            self._model.predict_proba(self._vectorizer.transform(texts))[:, 1].tolist()
        )
        threshold = self._threshold
        return [
            {"label": "offensive" if p >= threshold else "ok", "probability": round(p, 6)}
            for p in probabilities
        ]
