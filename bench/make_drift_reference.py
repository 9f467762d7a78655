"""Write ml_services/drift_reference.json: each task's reference counts for drift monitoring.

    python bench/make_drift_reference.py        # rewrites ml_services/drift_reference.json

The reference texts are bench/drift_corpus.py's `in_distribution(400, seed=0)`: generated,
so the file is the same on every run. Each bundled model (default settings, the shipped
intents file) labels them; the file keeps, per task, the probe's key (which model and
thresholds it was made with: another key means the service learns its reference from its
first requests instead), the counts per feature bin, and for embeddings the texts' mean
vector (the centroid the `centroid` distance is measured to).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.drift_corpus import in_distribution  # noqa: E402
from ml_services.drift import DriftProbe, reference_file  # noqa: E402

REFERENCE_TEXTS = 400
SEED = 0


def models() -> dict[str, Any]:
    """Every bundled task's model, loaded with default settings."""
    from ml_services.classify import ClassifyRunner, ClassifySettings
    from ml_services.embed import EmbedRunner, EmbedSettings
    from ml_services.sentiment import SentimentRunner, SentimentSettings

    out: dict[str, Any] = {}
    for runner in (SentimentRunner(SentimentSettings()), ClassifyRunner(ClassifySettings()),
                   EmbedRunner(EmbedSettings())):
        out.update(runner.load())
    return out


def predict(model: Any, texts: list[str]) -> list[Any]:
    return [row for i in range(0, len(texts), 32) for row in model.predict(texts[i:i + 32])]


def counts(probe: DriftProbe, texts: list[str], predictions: list[Any]) -> dict[str, list[int]]:
    table = {f.name: [0] * f.bins for f in probe.features}
    for text, prediction in zip(texts, predictions, strict=True):
        for feature, value in zip(probe.features, probe.values(text, prediction), strict=True):
            table[feature.name][feature.index(value)] += 1
    return table


def main() -> None:
    texts = in_distribution(REFERENCE_TEXTS, SEED)
    tasks: dict[str, Any] = {}
    for task, model in models().items():
        predictions = predict(model, texts)
        entry: dict[str, Any] = {}
        if task == "embedding":
            mean = sum(p["embedding"] for p in predictions) / len(predictions)
            entry = {"key": model.drift_probe().key.split()[0],
                     "centroid": [round(float(x), 6) for x in mean]}
        probe = model.drift_probe(entry or None)
        entry.update(key=probe.key, features=counts(probe, texts, predictions))
        tasks[task] = entry
        print(task, {k: v for k, v in entry["features"].items()})
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    out = {"made_by": "bench/make_drift_reference.py",
           "texts": f"bench/drift_corpus.py in_distribution({REFERENCE_TEXTS}, seed={SEED}), "
                    f"sha256 {digest}",
           "tasks": tasks}
    path = reference_file()
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
