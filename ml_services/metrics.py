"""Prometheus metrics of one service app, in the app's own registry.

Use one `ServiceMetrics` per app (not the global registry), so that tests and a canary can
run several apps in one process without metric-name clashes.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from ml_services.batching import CallObserver
from ml_services.drift import DriftMonitor

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class ServiceMetrics:
    """Inference latency, batch sizes, texts, model calls, requests and errors."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inference_seconds = Histogram(
            "ml_inference_seconds", "Time spent in one model call (one batch).",
            ["task"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "ml_batch_size_texts", "Texts per model call.",
            ["task"], buckets=_BATCH_BUCKETS, registry=r,
        )
        self.texts = Counter("ml_texts_processed", "Texts run through a model.", ["task"],
                             registry=r)
        self.model_calls = Counter("ml_model_calls", "Model calls (batches and retries).",
                                   ["task"], registry=r)
        self.requests = Counter("ml_predict_requests", "Accepted /predict requests.", ["task"],
                                registry=r)
        self.errors = Counter("ml_errors", "Answers with an error status.", ["status"],
                              registry=r)
        # ml_model_info{task, name, version, artefact_sha256, ...} 1: joined on (instance,
        # task) to split any ml_* series by model version (canary panels, alerts).
        self.model_info = Info("ml_model", "The model serving each task.", ["task"],
                               registry=r)
        # Drift monitors by task, filled at start-up; read only when scraped.
        self.drift: dict[str, DriftMonitor] = {}
        r.register(_DriftCollector(self.drift))

    def call_observer(self, task: str) -> CallObserver:
        """A `MicroBatcher` callback recording each model call of `task`."""
        latency = self.inference_seconds.labels(task)
        sizes = self.batch_size.labels(task)
        texts = self.texts.labels(task)
        calls = self.model_calls.labels(task)

        def observe(n_texts: int, seconds: float) -> None:
            latency.observe(seconds)
            sizes.observe(n_texts)
            texts.inc(n_texts)
            calls.inc()

        return observe

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class _DriftCollector(Collector):
    """ml_drift_* computed from the monitors at scrape time (never per request)."""

    def __init__(self, monitors: dict[str, DriftMonitor]) -> None:
        self._monitors = monitors

    def collect(self) -> Iterator[Metric]:
        value = GaugeMetricFamily(
            "ml_drift_psi", "PSI of a feature over the sliding window against the reference "
            "(absent until both hold enough texts).", labels=["task", "feature"])
        window = GaugeMetricFamily("ml_drift_window_texts", "Texts in the sliding window.",
                                   labels=["task"])
        reference = GaugeMetricFamily(
            "ml_drift_reference_texts", "Texts of the reference; source: bundled (the "
            "shipped file) or first_requests (learned after start-up).",
            labels=["task", "source"])
        for task, monitor in self._monitors.items():
            window.add_metric([task], monitor.window_size)
            reference.add_metric([task, monitor.source], monitor.reference_texts)
            for feature, psi in (monitor.psi() or {}).items():
                value.add_metric([task, feature], psi)
        yield value
        yield window
        yield reference
