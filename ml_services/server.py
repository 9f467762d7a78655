"""The HTTP server shared by every inference service.

Use `create_app(runner, settings)` to build a service's Starlette app: `POST /predict`,
`GET /v1/models`, `GET /healthz`, `GET /readyz` and `GET /metrics`, problem+json errors,
X-Request-ID echo, one `MicroBatcher` per task, plus the runner's own routes (which reach
the models through the `ServiceHandle`). Models load once in the lifespan, never per
request.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ml_services.batching import MicroBatcher
from ml_services.drift import DriftMonitor, bundled_reference, load_references
from ml_services.metrics import ServiceMetrics
from ml_services.parsing import parse_predict
from ml_services.problems import ProblemError, from_problem, problem_response
from ml_services.request_id import RequestIdMiddleware, request_id_of
from ml_services.runner import ModelRunner, TaskModel
from ml_services.settings import ServiceSettings

log = structlog.get_logger(__name__)

_JSON = "application/json"
# Model-card fields copied into ml_model_info (short, stable strings only).
_INFO_FIELDS = ("precision", "artefact_sha256", "source")
_HTTP_PROBLEMS = {
    404: ("not-found", "Not Found"),
    405: ("method-not-allowed", "Method Not Allowed"),
}


@dataclass(slots=True)
class _Task:
    """A loaded task: its model, its batcher and its precomputed answer pieces."""

    model: TaskModel
    batcher: MicroBatcher[dict[str, Any]]
    model_json: bytes  # the serialized "model" member of every answer
    version_header: str


class ServiceHandle:
    """Everything one app holds between requests; what a runner's own routes use."""

    def __init__(self, runner: ModelRunner, settings: ServiceSettings) -> None:
        self.runner = runner
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.tasks: dict[str, _Task] = {}
        self.executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        s = self.settings
        # One worker thread: the models are not meant to run concurrently with themselves.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ml-model")
        references = load_references()
        for name, model in self.runner.load().items():
            self._monitor_drift(name, model, references.get(name))
            version = s.model_version or model.version
            batcher: MicroBatcher[dict[str, Any]] = MicroBatcher(
                model.predict, max_batch_size=s.max_batch_size, max_wait_ms=s.max_wait_ms,
                executor=self.executor, inline_max_texts=s.inline_max_texts,
                on_call=self.metrics.call_observer(name),
            )
            self.tasks[name] = _Task(
                model, batcher, orjson.dumps({"name": model.name, "version": version}),
                f"{model.name}/{version}",
            )
            card = getattr(model, "card", None) or {}
            self.metrics.model_info.labels(name).info({
                "name": model.name, "version": version,
                **{k: str(card[k]) for k in _INFO_FIELDS if k in card},
            })

    def _monitor_drift(self, name: str, model: TaskModel, entry: Any) -> None:
        make_probe = getattr(model, "drift_probe", None)
        if make_probe is None:
            return
        probe = make_probe(entry)
        self.metrics.drift[name] = DriftMonitor(
            probe, self.settings.drift_window_texts, self.settings.drift_min_texts,
            bundled_reference(entry, probe))

    async def stop(self) -> None:
        for task in self.tasks.values():
            await task.batcher.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    @property
    def ready(self) -> bool:
        return bool(self.tasks) and all(t.batcher.alive for t in self.tasks.values())

    def model_of(self, task: str) -> TaskModel:
        return self.tasks[task].model

    def answer_headers(self, task: str) -> dict[str, str]:
        return {"x-model-version": self.tasks[task].version_header}

    async def run(self, task: str, texts: list[str], request: Request) -> list[Any]:
        """The task's results for `texts` through its batcher; a 500 problem if the model
        fails on them."""
        self.metrics.requests.labels(task).inc()
        try:
            results = await self.submit(task, texts)
        except Exception as exc:
            # Only this request's input broke the model (the batcher isolates the others).
            log.error("predict_failed", task=task, error=type(exc).__name__,
                      request_id=request_id_of(request.scope))
            raise ProblemError(500, "model-error", "Model error",
                               "the model failed on this request") from None
        monitor = self.metrics.drift.get(task)
        if monitor is not None:
            monitor.observe(texts, results)  # a few counter increments per text
        return results

    async def submit(self, task: str, texts: list[str]) -> list[Any]:
        """The task's results for `texts` through its batcher (exceptions as raised)."""
        return await self.tasks[task].batcher.submit(texts)

    async def body(self, request: Request) -> bytes:
        return await _read_body(request, self.settings.max_body_bytes)

    def model_list(self) -> dict[str, Any]:
        """GET /v1/models: one entry per task (OpenAI's list shape plus the model card)."""
        data = []
        for name, task in self.tasks.items():
            card = dict(getattr(task.model, "card", None) or {})
            card.update(name=task.model.name, version=task.version_header.split("/", 1)[1])
            data.append({"id": task.model.name, "object": "model", "owned_by": "ml_services",
                         "task": name, **card})
        return {"object": "list", "data": data}

    def task(self, name: str | None) -> tuple[str, _Task]:
        name = self.runner.default_task if name is None else name  # "" is no task
        task = self.tasks.get(name)
        if task is None:
            known = ", ".join(sorted(self.tasks))
            raise ProblemError(422, "unknown-task", "Unknown task",
                               f"task '{name}' is not served here; tasks: {known}")
        return name, task


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit` bytes."""
    too_large = ProblemError(413, "body-too-large", "Request body too large",
                             f"the limit is max_body_bytes={limit}")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ProblemError(400, "bad-content-length", "Bad Content-Length",
                               "Content-Length is not a number")
        if int(length) > limit:
            raise too_large
        return await request.body()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(runner: ModelRunner, settings: ServiceSettings) -> Starlette:
    """Build the app serving `runner`'s tasks under `settings`."""
    service = ServiceHandle(runner, settings)
    metrics = service.metrics

    async def predict(request: Request) -> Response:
        raw = await service.body(request)
        parsed = parse_predict(raw, max_texts=settings.max_texts, max_chars=settings.max_chars)
        name, task = service.task(parsed.task)
        predictions = await service.run(name, parsed.texts, request)
        # Assembled by hand: the "model" member is serialized once, at start-up.
        body = b"".join((
            b'{"model":', task.model_json, b',"task":', orjson.dumps(name),
            b',"predictions":', orjson.dumps(predictions, option=orjson.OPT_SERIALIZE_NUMPY),
            b"}",
        ))
        return Response(body, media_type=_JSON, headers={"x-model-version": task.version_header})

    async def models(request: Request) -> Response:
        return Response(orjson.dumps(service.model_list()), media_type=_JSON)

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    async def readyz(request: Request) -> Response:
        if service.ready:
            return Response(b'{"status":"ready"}', media_type=_JSON)
        return problem_response(503, "/problems/not-ready", "Not ready",
                                "the models are not loaded", request_id_of(request.scope))

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        metrics.errors.labels(str(exc.status)).inc()
        return from_problem(exc, request_id_of(request.scope))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        metrics.errors.labels(str(exc.status_code)).inc()
        slug, title = _HTTP_PROBLEMS.get(exc.status_code, ("http-error", "HTTP error"))
        detail = f"{request.method} {request.url.path}: {exc.detail}"
        return problem_response(exc.status_code, "/problems/" + slug, title, detail,
                                request_id_of(request.scope), headers=exc.headers)

    async def on_error(request: Request, exc: Exception) -> Response:
        metrics.errors.labels("500").inc()
        log.error("unhandled_error", error=type(exc).__name__)
        return problem_response(500, "/problems/internal", "Internal error",
                                "an unexpected error occurred", request_id_of(request.scope))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.start()
        await runner.started(service)
        # The loaded models are long-lived: keep them out of every future GC pass, which
        # otherwise shows up as latency spikes (p99) under load.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await runner.stopping()
            await service.stop()

    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            *runner.routes(service),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={ProblemError: on_problem, HTTPException: on_http_error,
                            Exception: on_error},
        lifespan=lifespan,
    )
    app.add_middleware(RequestIdMiddleware)
    app.state.service = service
    return app


def task_batchers(app: Starlette) -> Mapping[str, MicroBatcher[dict[str, Any]]]:
    """The batchers of a running app, by task (for tests and diagnostics)."""
    service: ServiceHandle = app.state.service
    return {name: task.batcher for name, task in service.tasks.items()}
