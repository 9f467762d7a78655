"""Drift monitoring: each task's recent inputs and outputs against a reference, as PSI.

Per task a `DriftProbe` (given by the model) names its features and reads one value per
feature from each text and its prediction: the text's length, the share of its words the
model does not know (`oov`), the embedding's cosine distance to the reference centroid
(`centroid`), the predicted `label`. Each value falls into a fixed bin, so a text costs a
few counter increments: the sliding window is a ring of `SLOTS` slots of counts, each
holding `window_texts / SLOTS` texts; when the newest slot is full the oldest is dropped.
Nothing is computed per request beyond that: PSI (population stability index) of every
feature, window against reference, is computed when /metrics is scraped.

The reference is the bundled one (`drift_reference.json`, made by
bench/make_drift_reference.py from a fixed, generated text set: deterministic, the same on
every replica and after every restart) when its `key` matches the probe's (same model,
thresholds, intents file); otherwise the first `window_texts` texts after start-up are
the reference (so an operator's own intents file still gets drift monitoring).

PSI = sum over bins of (a - e) * ln(a / e), with a and e the window's and the reference's
shares of a bin, each count plus 0.5 (so an empty bin costs a bounded amount, not
infinity). Usual reading: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant.
"""

from __future__ import annotations

import bisect
import functools
import importlib.resources
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SLOTS = 10
_PSEUDO_COUNT = 0.5
_WORD = re.compile(r"[^\W\d_]{2,}")  # letters only; one-letter words say little


def oov_share(text: str, vocabulary: Mapping[str, Any]) -> float:
    """The share of the text's words (lower-cased) that `vocabulary` lacks; 0 for none."""
    words = _WORD.findall(text.lower())
    if not words:
        return 0.0
    return sum(1 for w in words if w not in vocabulary) / len(words)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI of the `actual` counts against the `expected` counts (same bins)."""
    if len(expected) != len(actual):
        raise ValueError("expected and actual need the same bins")
    e_total = sum(expected) + _PSEUDO_COUNT * len(expected)
    a_total = sum(actual) + _PSEUDO_COUNT * len(actual)
    total = 0.0
    for e_count, a_count in zip(expected, actual, strict=True):
        e = (e_count + _PSEUDO_COUNT) / e_total
        a = (a_count + _PSEUDO_COUNT) / a_total
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True, slots=True)
class Feature:
    """A binned number (`edges`: bin i holds edges[i-1] <= v < edges[i]) or a category
    (`labels`, plus one last bin for any other label)."""

    name: str
    edges: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()

    @property
    def bins(self) -> int:
        return len(self.labels) + 1 if self.labels else len(self.edges) + 1

    def index(self, value: Any) -> int:
        return self.indexer()(value)

    def indexer(self) -> Callable[[Any], int]:
        """value -> bin, as one fast call (the monitor's per-text path)."""
        if self.labels:
            bins = {label: i for i, label in enumerate(self.labels)}
            other = len(self.labels)
            return lambda value: bins.get(value, other)
        return functools.partial(bisect.bisect_right, self.edges)


# Characters; most support messages are one or two sentences.
LENGTH = Feature("length", edges=(16, 32, 48, 64, 96, 128, 192, 256, 512, 1024))
# Share of a text's words the model does not know; 1.0 (nothing known) has its own bin.
OOV = Feature("oov", edges=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
# Cosine distance of an embedding to the reference texts' mean embedding.
CENTROID = Feature("centroid", edges=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1))


@dataclass(frozen=True, slots=True)
class DriftProbe:
    """What a model tells the monitor: its features, how to read them off a text and its
    prediction, and the key its bundled reference must carry to apply."""

    features: tuple[Feature, ...]
    values: Callable[[str, Any], tuple[Any, ...]]
    key: str


class DriftMonitor:
    """One task's reference counts and sliding window; `observe` per batch, `psi` per
    scrape (both on the event loop)."""

    def __init__(self, probe: DriftProbe, window_texts: int, min_texts: int,
                 reference: Sequence[Sequence[float]] | None = None) -> None:
        self.probe = probe
        self.slot_texts = max(1, window_texts // SLOTS)
        self.min_texts = min_texts
        self.source = "bundled" if reference is not None else "first_requests"
        self.reference: list[list[float]] | None = (
            [list(r) for r in reference] if reference is not None else None)
        # Learned reference: the first SLOTS * slot_texts texts are counted here.
        self._learning = [[0] * f.bins for f in probe.features]
        self._learned = 0
        self._slots = [[[0] * f.bins for f in probe.features] for _ in range(SLOTS)]
        self._fill = [0] * SLOTS
        self._head = 0
        self._indexers = tuple(f.indexer() for f in probe.features)

    @property
    def window_size(self) -> int:
        return sum(self._fill)

    @property
    def reference_texts(self) -> int:
        return int(sum(self.reference[0])) if self.reference is not None else self._learned

    def observe(self, texts: Sequence[str], predictions: Sequence[Any]) -> None:
        features = self.probe.features
        read = self.probe.values
        indexers = self._indexers
        for text, prediction in zip(texts, predictions, strict=True):
            values = read(text, prediction)
            if self.reference is None:
                counts = self._learning
                self._learned += 1
            else:
                if self._fill[self._head] == self.slot_texts:
                    self._head = (self._head + 1) % SLOTS
                    self._slots[self._head] = [[0] * f.bins for f in features]
                    self._fill[self._head] = 0
                counts = self._slots[self._head]
                self._fill[self._head] += 1
            for row, index, value in zip(counts, indexers, values):  # noqa: B905 (hot)
                row[index(value)] += 1
            if self.reference is None and self._learned == self.slot_texts * SLOTS:
                self.reference = [[float(c) for c in row] for row in self._learning]

    def window_counts(self) -> list[list[int]]:
        """The window's counts per feature (the sum of the ring's slots)."""
        return [[sum(slot[i][b] for slot in self._slots) for b in range(f.bins)]
                for i, f in enumerate(self.probe.features)]

    def psi(self) -> dict[str, float] | None:
        """PSI per feature, or None while the reference or the window is too small."""
        if self.reference is None or self.window_size < self.min_texts:
            return None
        return {f.name: psi(ref, counts) for f, ref, counts
                in zip(self.probe.features, self.reference, self.window_counts(), strict=True)}


def reference_file() -> Path:
    return Path(str(importlib.resources.files("ml_services") / "drift_reference.json"))


def load_references(path: Path | None = None) -> Mapping[str, Any]:
    """The bundled references by task (an empty mapping if the file is missing)."""
    try:
        data: dict[str, Any] = json.loads((path or reference_file()).read_text())
    except FileNotFoundError:
        return {}
    tasks: dict[str, Any] = data.get("tasks", {})
    return tasks


def bundled_reference(entry: Mapping[str, Any] | None, probe: DriftProbe
                      ) -> list[list[float]] | None:
    """The entry's counts if it was made for this probe (same key and bins), else None."""
    if not entry or entry.get("key") != probe.key:
        return None
    counts = entry.get("features", {})
    rows = [counts.get(f.name) for f in probe.features]
    if any(row is None or len(row) != f.bins for row, f in zip(rows, probe.features,
                                                               strict=True)):
        return None
    return [[float(c) for c in row] for row in rows if row is not None]
