"""The encoder itself: the INT8 variant against the float model and the reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml_services.sentence_encoder import SentenceEncoder

REFERENCE = json.loads((Path(__file__).parent / "fixtures/minilm_reference.json").read_text())


def test_int8_variant_agrees_with_the_float_model_but_is_quantized() -> None:
    int8 = SentenceEncoder.load("int8")
    got = int8.encode(REFERENCE["texts"])
    ref = np.array(REFERENCE["embeddings"], dtype=np.float32)
    cosine = (got * ref).sum(axis=1)
    # Measured: mean 0.985, min 0.964 (the emoji text); bench/bench_embeddings.py prints it.
    assert cosine.mean() > 0.975 and cosine.min() > 0.94, cosine
    assert np.abs(got - ref).max() > 1e-3  # really the 8-bit weights, not the float graph
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert int8.card.precision == "int8" and int8.card.version.endswith("-int8")
