"""The sentiment service: `python -m ml_services.sentiment` (or `ml-sentiment`).

Settings come from `ML_SENTIMENT_*` environment variables (see `SentimentSettings` and
`ServiceSettings`); two instances with different `MODEL_VERSION` / thresholds can run side
by side, e.g. as a canary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ml_services.cli import serve
from ml_services.runner import ModelRunner, TaskModel
from ml_services.sentiment_model import VaderSentiment
from ml_services.settings import ServiceSettings

TASK = "sentiment"


class SentimentSettings(ServiceSettings):
    """`ML_SENTIMENT_*`: the shared knobs plus VADER's label thresholds."""

    model_config = SettingsConfigDict(env_prefix="ML_SENTIMENT_", extra="ignore", frozen=True)

    port: int = Field(default=8101, ge=0, le=65535)
    # VADER is pure Python: a thread hop only adds GIL contention, so batches up to this
    # size run inline on the event loop (see the README's benchmark section).
    inline_max_texts: int = Field(default=4096, ge=0)
    positive_threshold: float = 0.05
    negative_threshold: float = -0.05


class SentimentRunner(ModelRunner):
    """Serves the single `sentiment` task."""

    default_task = TASK

    def __init__(self, settings: SentimentSettings) -> None:
        self._settings = settings

    def load(self) -> Mapping[str, TaskModel]:
        s = self._settings
        return {TASK: VaderSentiment(s.positive_threshold, s.negative_threshold,
                                     s.model_version)}


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: serve sentiment until interrupted."""
    serve("Sentiment inference service (VADER).", SentimentSettings, SentimentRunner, argv)


if __name__ == "__main__":
    main()
