"""The sentiment model: VADER, labelled by thresholds on its compound score.

Use `VaderSentiment` as the sentiment service's only task. The lexicon ships inside the
vaderSentiment package; `FastVader` gives the stock scores, faster.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version as package_version
from typing import Any

from ml_services.drift import LENGTH, OOV, DriftProbe, Feature, oov_share
from ml_services.model_card import artefact_card
from ml_services.vader_fast import FastVader

MODEL_NAME = "vader"


class VaderSentiment:
    """Label each text positive / neutral / negative by its compound score.

    `compound >= positive_threshold` is positive, `compound <= negative_threshold` is
    negative, anything between is neutral (VADER's own convention, with ±0.05).
    """

    def __init__(self, positive_threshold: float = 0.05, negative_threshold: float = -0.05,
                 version: str | None = None) -> None:
        if negative_threshold > positive_threshold:
            raise ValueError("negative_threshold must not exceed positive_threshold")
        self._analyzer = FastVader()
        self._pos = positive_threshold
        self._neg = negative_threshold
        self.name = MODEL_NAME
        self.version = version or package_version("vaderSentiment")
        self.card = artefact_card(
            "vaderSentiment", "vader_lexicon.txt",
            "a lexicon of ~7,500 tokens rated by 10 human raters each (Hutto & Gilbert, "
            "ICWSM 2014); rules, no training")

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        scores = self._analyzer.polarity_scores
        pos, neg = self._pos, self._neg
        out: list[dict[str, Any]] = []
        for text in texts:
            s = scores(text)
            compound = s["compound"]
            label = "positive" if compound >= pos else "negative" if compound <= neg else "neutral"
            out.append({"label": label, "compound": compound, "scores": s})
        return out

    def drift_probe(self, reference: Any = None) -> DriftProbe:
        """Length, the share of words outside VADER's lexicon, and the label."""
        lexicon = self._analyzer.lexicon

        def values(text: str, prediction: dict[str, Any]) -> tuple[Any, ...]:
            return len(text), oov_share(text, lexicon), prediction["label"]

        labels = Feature("label", labels=("negative", "neutral", "positive"))
        return DriftProbe((LENGTH, OOV, labels), values,
                          key=f"vader {self._neg} {self._pos}")
