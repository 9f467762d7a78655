"""Zero-shot intents: the file's validation, accuracy on a labelled set, and reload."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from ml_services.embed import shipped_intents
from ml_services.intents import IntentsError, read_intents

LABELLED = yaml.safe_load((Path(__file__).parent / "fixtures/intents_labelled.yaml")
                          .read_text())


def intent(url: str, body: object) -> httpx.Response:
    return httpx.post(url + "/v1/intent", json=body, timeout=30)


def test_labelled_set_accuracy_and_unknown_below_the_threshold(embed_url: str) -> None:
    texts = [text for _, text in LABELLED]
    got: list[dict[str, object]] = []
    for i in range(0, len(texts), 16):  # the test service's max_texts
        r = intent(embed_url, {"texts": texts[i:i + 16]})
        assert r.status_code == 200, r.text
        got += r.json()["predictions"]
    labels = [p["label"] for p in got]
    correct = sum(label == want for label, (want, _) in zip(labels, LABELLED, strict=True))
    # 32 of 36 measured (bench/bench_embeddings.py prints it); a broken matcher gets ~5.
    assert correct >= 29, list(zip(labels, LABELLED, strict=True))
    out_of_scope = [p for p, (want, _) in zip(got, LABELLED, strict=True) if want == "unknown"]
    assert all(p["label"] == "unknown" and p["confidence"] < 0.35 for p in out_of_scope)
    first = got[0]
    assert first["intents"][0]["label"] == "billing"
    assert first["confidence"] == first["intents"][0]["score"]


def test_an_edited_file_is_reloaded_and_a_broken_one_keeps_the_last_good(
    embed_url: str, embed_intents_file: Path,
) -> None:
    shipped = embed_intents_file.read_text()
    text = "I need a parking space for my truck"

    def answer() -> dict[str, object]:
        pred: dict[str, object] = intent(embed_url, {"text": text}).json()["predictions"][0]
        return pred

    def wait_for(label: str) -> dict[str, object]:
        deadline = time.monotonic() + 20
        while (pred := answer())["label"] != label:
            assert time.monotonic() < deadline, pred
            time.sleep(0.05)
        return pred

    assert answer()["label"] == "unknown"
    try:
        embed_intents_file.write_text(shipped + "  parking:\n    examples:\n"
                                      "      - Where can I park my car?\n"
                                      "      - I need a parking spot\n")
        added = wait_for("parking")
        assert added["intents_version"] != read_intents(shipped_intents()).version
        embed_intents_file.write_text(shipped + "  parking:\n    examples: []\n")
        time.sleep(0.5)  # ten reload intervals: the broken file was seen and refused
        assert answer()["label"] == "parking"
    finally:
        embed_intents_file.write_text(shipped)
    wait_for("unknown")


@pytest.mark.parametrize(("content", "where"), [
    ("intents:\n  billing:\n    examples: []\n", ":3: intents.billing.examples"),
    ("intents:\n  a:\n    examples: [x]\n    treshold: 0.5\n", ":4: intents.a.treshold"),
    ("threshold: 2\nintents:\n  a:\n    examples: [x]\n", ":1: threshold"),
    ("intents:\n  unknown:\n    examples: [x]\n", ":2: intents.unknown"),
    ("intents: {}\n", ":1: intents"),
    ("intents:\n  a: [x\n", ": not valid YAML"),
])
def test_invalid_files_are_refused_naming_line_and_field(tmp_path: Path, content: str,
                                                          where: str) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(content)
    with pytest.raises(IntentsError) as caught:
        read_intents(path)
    assert str(caught.value).startswith(str(path)) and where in str(caught.value)


def test_the_shipped_file_validates() -> None:
    spec = read_intents(shipped_intents())
    assert "billing" in spec.labels and all(len(e) >= 4 for e in spec.examples)
