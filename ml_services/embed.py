"""The embeddings service: `python -m ml_services.embed` (or `ml-embed`), port 8103.

    POST /v1/embeddings   OpenAI-compatible sentence embeddings (openai_embeddings.py)
    POST /v1/intent       zero-shot intent of one text or a list (intents.py)
    POST /predict         the shared shape, tasks `embedding` and `intent`
    GET  /v1/models       the model card of each task

One all-MiniLM-L6-v2 encoder (sentence_encoder.py) serves both tasks, each with its own
micro-batcher; both batchers share the service's one worker thread. `ML_EMBED_PRECISION`
picks float32 or the INT8 variant. The intents file is re-read when it changes (polled
every `INTENTS_RELOAD_INTERVAL` seconds): a file that does not validate is logged with
its file, line and field, and the last good set stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import structlog
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ml_services.cli import serve
from ml_services.drift import CENTROID, LENGTH, DriftProbe, Feature
from ml_services.intents import UNKNOWN, IntentIndex, IntentsError, read_intents
from ml_services.openai_embeddings import parse_embeddings, render_embeddings
from ml_services.parsing import parse_predict
from ml_services.problems import ProblemError
from ml_services.runner import ModelRunner, TaskModel
from ml_services.sentence_encoder import MODEL_NAME, SentenceEncoder
from ml_services.server import ServiceHandle
from ml_services.settings import ServiceSettings

log = structlog.get_logger(__name__)

EMBEDDING, INTENT = "embedding", "intent"
INTENT_MODEL_NAME = "minilm-intent"
MODEL_ALIASES = (MODEL_NAME, "sentence-transformers/" + MODEL_NAME)


def shipped_intents() -> Path:
    """The example intents file inside the package (a SaaS support desk's intents)."""
    return Path(str(importlib.resources.files("ml_services") / "intents.yaml"))


class EmbedSettings(ServiceSettings):
    """`ML_EMBED_*`: the shared knobs, the precision, and the intents file."""

    model_config = SettingsConfigDict(env_prefix="ML_EMBED_", extra="ignore", frozen=True)

    port: int = Field(default=8103, ge=0, le=65535)
    # A transformer's cost grows with the tokens of a request (64 texts of 256 tokens
    # take seconds on one core) and a batch pads to its longest text: bound both.
    max_texts: int = Field(default=64, ge=1)
    max_batch_size: int = Field(default=64, ge=1)
    precision: Literal["float32", "int8"] = "float32"
    threads: int = Field(default=1, ge=1, description="onnxruntime threads per model call")
    intents_file: Path | None = None  # None: the package's example file
    intents_reload_interval: float = Field(default=1.0, gt=0)


class EmbeddingTask:
    """Texts to unit vectors (and their token counts)."""

    def __init__(self, encoder: SentenceEncoder, version: str | None) -> None:
        self._encoder = encoder
        self.name = encoder.card.name
        self.version = version or encoder.card.version
        self.card = encoder.card.as_dict()

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        vectors, counts = self._encoder.encode_counted(texts)
        return [{"embedding": v, "tokens": n} for v, n in zip(vectors, counts, strict=True)]

    def drift_probe(self, reference: Mapping[str, Any] | None = None) -> DriftProbe:
        """Length and the cosine distance to the bundled reference's centroid (length
        only without one: a centroid learned from live traffic would drift with it)."""
        key = MODEL_NAME  # int8 vectors agree with float32 to ~0.985 cosine: same bins
        centroid = (reference or {}).get("centroid") if (reference or {}).get("key") == key \
            else None
        if centroid is None:
            return DriftProbe((LENGTH,), lambda text, row: (len(text),), key=key + " no-centroid")
        mean = np.asarray(centroid, dtype=np.float32)
        mean /= np.linalg.norm(mean)

        def values(text: str, row: dict[str, Any]) -> tuple[Any, ...]:
            return len(text), 1.0 - float(row["embedding"] @ mean)

        return DriftProbe((LENGTH, CENTROID), values, key=key)


class IntentTask:
    """Texts to the nearest operator-defined intent; `index` is swapped on reload."""

    def __init__(self, encoder: SentenceEncoder, index: IntentIndex, source: Path,
                 version: str | None) -> None:
        self._encoder = encoder
        self.index = index
        self.source = source
        self.name = INTENT_MODEL_NAME
        self.version = version or encoder.card.version
        self.dimensions = encoder.card.dimensions

    @property
    def card(self) -> dict[str, Any]:
        return {**self._encoder.card.as_dict(), "base_model": self._encoder.card.name,
                "intents_file": str(self.source), "intents_version": self.index.spec.version,
                "labels": list(self.index.spec.labels)}

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        index = self.index  # read once: a reload mid-batch must not mix two sets
        out = index.classify(self._encoder.encode(texts))
        for item in out:
            item["intents_version"] = index.spec.version
        return out

    def drift_probe(self, reference: Any = None) -> DriftProbe:
        """Length and the label; the bundled reference holds for the shipped intents only
        (the key names the file's version), another file learns from its first texts."""
        spec = self.index.spec
        labels = Feature("label", labels=(*spec.labels, UNKNOWN))
        return DriftProbe((LENGTH, labels), lambda text, p: (len(text), p["label"]),
                          key=f"intents {spec.version}")


class EmbedRunner(ModelRunner):
    """Loads the encoder once and serves the embedding and intent tasks."""

    default_task = EMBEDDING

    def __init__(self, settings: EmbedSettings) -> None:
        self._settings = settings
        self._intents_path = settings.intents_file or shipped_intents()
        self._intent: IntentTask | None = None
        self._watch: asyncio.Task[None] | None = None

    def load(self) -> Mapping[str, TaskModel]:
        s = self._settings
        spec = read_intents(self._intents_path)  # IntentsError: the service does not start
        encoder = SentenceEncoder.load(s.precision, s.threads)
        index = IntentIndex.build(spec, encoder.encode([t for g in spec.examples for t in g]))
        self._intent = IntentTask(encoder, index, self._intents_path, s.model_version)
        return {EMBEDDING: EmbeddingTask(encoder, s.model_version), INTENT: self._intent}

    async def started(self, service: ServiceHandle) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._watch_intents(service))

    async def stopping(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def _watch_intents(self, service: ServiceHandle) -> None:
        path = self._intents_path
        seen = _stamp(path)
        while True:
            await asyncio.sleep(self._settings.intents_reload_interval)
            stamp = _stamp(path)
            if stamp == seen:
                continue
            seen = stamp
            await self.reload_intents(service)

    async def reload_intents(self, service: ServiceHandle) -> bool:
        """Re-read the intents file and swap the index in whole; keep the old on error."""
        assert self._intent is not None
        try:
            spec = read_intents(self._intents_path)
        except IntentsError as exc:
            log.error("intents_reload_failed", error=str(exc),
                      kept=self._intent.index.spec.version)
            return False
        examples = [t for g in spec.examples for t in g]
        # Through the embedding batcher: the encoder runs on the service's one thread.
        rows = await service.submit(EMBEDDING, examples)
        self._intent.index = IntentIndex.build(spec, np.stack([r["embedding"] for r in rows]))
        log.info("intents_reloaded", version=spec.version, labels=len(spec.labels))
        return True

    def routes(self, service: ServiceHandle) -> Sequence[BaseRoute]:
        s = self._settings

        async def embeddings(request: Request) -> Response:
            assert self._intent is not None
            parsed = parse_embeddings(await service.body(request), model_ids=MODEL_ALIASES,
                                      dimensions=self._intent.dimensions,
                                      max_texts=s.max_texts, max_chars=s.max_chars)
            rows = await service.run(EMBEDDING, parsed.texts, request)
            return Response(render_embeddings(MODEL_NAME, rows, parsed.base64),
                            media_type="application/json",
                            headers=service.answer_headers(EMBEDDING))

        async def intent(request: Request) -> Response:
            parsed = parse_predict(await service.body(request), max_texts=s.max_texts,
                                   max_chars=s.max_chars)
            if parsed.task is not None:
                raise ProblemError(422, "invalid-request", "Invalid request body",
                                   "unknown field(s): task; allowed: text, texts")
            predictions = await service.run(INTENT, parsed.texts, request)
            model = service.model_of(INTENT)
            body = orjson.dumps({"model": {"name": model.name, "version": model.version},
                                 "predictions": predictions})
            return Response(body, media_type="application/json",
                            headers=service.answer_headers(INTENT))

        return [Route("/v1/embeddings", embeddings, methods=["POST"]),
                Route("/v1/intent", intent, methods=["POST"])]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: serve embeddings and intents until interrupted."""
    serve("Embeddings and zero-shot intent service (all-MiniLM-L6-v2).", EmbedSettings,
          EmbedRunner, argv)


if __name__ == "__main__":
    main()
