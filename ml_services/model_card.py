"""MLflow-style metadata of a model shipped inside a package: what it is and where from.

Use `artefact_card(distribution, file, training_data)` in a model's constructor (it reads
the artefact once, at load): the card names the package it came from and the sha256 of
the file that holds the model, so `/v1/models` and `ml_model_info` tell two builds with
the same version apart.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError, distribution
from typing import Any


def artefact_card(dist_name: str, file: str, training_data: str) -> dict[str, Any]:
    """The card of the model in `file` (a path inside the distribution, or its name)."""
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        return {"source": dist_name, "training_data": training_data}
    match = [f for f in dist.files or () if str(f) == file or str(f).endswith("/" + file)]
    sha256 = hashlib.sha256(match[0].locate().read_bytes()).hexdigest() if match else "unknown"
    return {"source": f"{dist_name}=={dist.version}", "artefact_sha256": sha256,
            "training_data": training_data}
