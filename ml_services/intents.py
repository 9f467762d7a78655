"""Zero-shot intents: operator-defined labels with example phrases, matched by embedding.

    version: 1
    threshold: 0.35            # a text whose best match scores below this is `unknown`
    intents:
      billing:
        description: Charges, invoices, refunds      # optional, shown nowhere but here
        examples: ["I was charged twice", "send me last month's invoice"]
        threshold: 0.5         # optional: this intent's own minimum

`read_intents(path)` validates the file once (an `IntentsError` names file, line and
field); `IntentIndex.build(spec, vectors)` holds the examples' embeddings; `classify`
scores a batch of text embeddings: an intent's score is the cosine similarity of the
text to its nearest example (the embeddings are unit length, so a dot product), the
label is the best intent if its score reaches the intent's threshold, else `unknown`.
Nearest example rather than the examples' centroid: an intent's phrasings can differ
a lot ("cancel my plan" / "how do I close my account"), and a centroid between them is
near neither.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

UNKNOWN = "unknown"
DEFAULT_THRESHOLD = 0.35  # chosen on tests/ml_services/fixtures/intents_labelled.yaml
_TOP = 3  # alternatives listed in an answer


class IntentsError(Exception):
    """The intents file does not validate: `str()` names file, line and field."""


@dataclass(frozen=True, slots=True)
class IntentSpec:
    """A validated intents file: labels, their examples and thresholds."""

    labels: tuple[str, ...]
    examples: tuple[tuple[str, ...], ...]  # per label
    thresholds: tuple[float, ...]  # per label
    digest: str  # sha256 of the file: which version of the set answered

    @property
    def version(self) -> str:
        return self.digest[:12]


def _fail(path: Path, node: yaml.Node | None, field: str, why: str) -> IntentsError:
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    return IntentsError(f"{path}{line}: {field}: {why}")


def _mapping(node: yaml.Node) -> dict[str, yaml.Node]:
    assert isinstance(node, yaml.MappingNode)
    return {k.value: v for k, v in node.value}


def _threshold(path: Path, node: yaml.Node, field: str) -> float:
    try:
        value = float(node.value)
    except (TypeError, ValueError):
        raise _fail(path, node, field, "must be a number between 0 and 1") from None
    if not isinstance(node, yaml.ScalarNode) or not 0.0 <= value <= 1.0:
        raise _fail(path, node, field, "must be a number between 0 and 1")
    return value


def read_intents(path: Path) -> IntentSpec:
    """Parse and validate the intents file, or raise `IntentsError`."""
    try:
        raw = path.read_bytes()
        root = yaml.compose(raw.decode("utf-8"), Loader=yaml.SafeLoader)
    except OSError as exc:
        raise IntentsError(f"{path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise IntentsError(f"{path}: is not UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise IntentsError(f"{path}{where}: not valid YAML") from None
    if not isinstance(root, yaml.MappingNode):
        raise _fail(path, root, "(top level)", "must be a mapping with `intents`")
    top = _mapping(root)
    unknown = set(top) - {"version", "threshold", "intents"}
    if unknown:
        raise _fail(path, top[sorted(unknown)[0]], sorted(unknown)[0], "unknown field")
    if "version" in top and top["version"].value not in ("1",):
        raise _fail(path, top["version"], "version", "only version 1 is known")
    default = (_threshold(path, top["threshold"], "threshold") if "threshold" in top
               else DEFAULT_THRESHOLD)
    intents = top.get("intents")
    if not isinstance(intents, yaml.MappingNode) or not intents.value:
        raise _fail(path, intents or root, "intents", "must map at least one label")
    labels, examples, thresholds = [], [], []
    for key, value in intents.value:
        label = key.value
        field = f"intents.{label}"
        if not isinstance(key, yaml.ScalarNode) or not label or label == UNKNOWN:
            raise _fail(path, key, field, f"a label must be a non-empty name, not {UNKNOWN!r}")
        if label in labels:
            raise _fail(path, key, field, "label defined twice")
        if not isinstance(value, yaml.MappingNode):
            raise _fail(path, value, field, "must be a mapping with `examples`")
        spec = _mapping(value)
        extra = set(spec) - {"examples", "threshold", "description"}
        if extra:
            name = sorted(extra)[0]
            raise _fail(path, spec[name], f"{field}.{name}", "unknown field")
        phrases = spec.get("examples")
        if not isinstance(phrases, yaml.SequenceNode) or not phrases.value:
            raise _fail(path, phrases or value, f"{field}.examples",
                        "must list at least one example phrase")
        texts = []
        for i, item in enumerate(phrases.value):
            if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
                raise _fail(path, item, f"{field}.examples[{i}]", "must be a non-empty text")
            texts.append(str(item.value))
        labels.append(label)
        examples.append(tuple(texts))
        thresholds.append(_threshold(path, spec["threshold"], f"{field}.threshold")
                          if "threshold" in spec else default)
    return IntentSpec(tuple(labels), tuple(examples), tuple(thresholds),
                      hashlib.sha256(raw).hexdigest())


@dataclass(frozen=True, slots=True)
class IntentIndex:
    """An `IntentSpec` with its examples embedded: what `classify` scores against."""

    spec: IntentSpec
    vectors: npt.NDArray[np.float32]  # all examples, unit rows, label by label
    owner: npt.NDArray[np.intp]  # the label index of each row

    @classmethod
    def build(cls, spec: IntentSpec, vectors: npt.NDArray[np.float32]) -> IntentIndex:
        owner = np.repeat(np.arange(len(spec.labels)), [len(e) for e in spec.examples])
        return cls(spec, np.ascontiguousarray(vectors, dtype=np.float32), owner)

    def all_examples(self) -> list[str]:
        return [text for group in self.spec.examples for text in group]

    def classify(self, embeddings: npt.NDArray[np.float32]) -> list[dict[str, Any]]:
        """One prediction per row: label (or `unknown`), confidence, the top intents."""
        n_labels = len(self.spec.labels)
        sims = embeddings @ self.vectors.T  # texts x examples
        scores = np.full((len(embeddings), n_labels), -1.0, dtype=np.float32)
        np.maximum.at(scores.T, self.owner, sims.T)  # best example per label
        thresholds = np.asarray(self.spec.thresholds, dtype=np.float32)
        out = []
        for row in scores:
            order = np.argsort(-row)[:_TOP]
            best = int(order[0])
            confidence = max(0.0, float(row[best]))
            label = self.spec.labels[best] if row[best] >= thresholds[best] else UNKNOWN
            out.append({
                "label": label,
                "confidence": round(confidence, 4),
                "intents": [{"label": self.spec.labels[i], "score": round(float(row[i]), 4)}
                            for i in order],
            })
        return out
