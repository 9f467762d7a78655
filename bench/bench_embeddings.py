"""Benchmark the embeddings service: float32 vs INT8 speed, agreement and intent accuracy.

    python bench/bench_embeddings.py [--duration 5] [--no-http] [--no-pin]

Prints, for each precision (float32, int8):
  (1) agreement: cosine similarity of the variant's vectors to the reference pipeline's
      (sentence-transformers, tests/ml_services/fixtures/minilm_reference.json) and, for
      INT8, to the float model on 1,024 review-like texts (bench_ml_services.corpus);
  (2) the raw encoder in this process, one thread: texts/s with batches of 1 and 32,
      float32 and int8 measured in alternating rounds so that load on a shared machine
      hits both alike; the INT8 speed-up is the ratio;
  (3) intent accuracy on tests/ml_services/fixtures/intents_labelled.yaml with the
      shipped ml_services/intents.yaml;
  (4) over HTTP (unless --no-http; needs wrk): `python -m ml_services.embed` pinned to
      CPU 0, wrk to CPU 1: 1-text requests at c=16 and 32-text requests at c=4.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ml_services import corpus, report, run_wrk, start_service  # noqa: E402

from ml_services.embed import shipped_intents  # noqa: E402
from ml_services.intents import IntentIndex, read_intents  # noqa: E402
from ml_services.sentence_encoder import SentenceEncoder  # noqa: E402

FIXTURES = ROOT / "tests/ml_services/fixtures"


def rate(encoder: SentenceEncoder, texts: list[str], batch: int, seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for i in range(0, len(texts) - batch + 1, batch):
            encoder.encode(texts[i:i + batch])
            done += batch
            if time.perf_counter() - started >= seconds:
                break
    return done / (time.perf_counter() - started)


def intent_accuracy(encoder: SentenceEncoder) -> tuple[int, int]:
    spec = read_intents(shipped_intents())
    index = IntentIndex.build(spec, encoder.encode([t for g in spec.examples for t in g]))
    labelled = yaml.safe_load((FIXTURES / "intents_labelled.yaml").read_text())
    got = index.classify(encoder.encode([text for _, text in labelled]))
    return sum(p["label"] == want for p, (want, _) in zip(got, labelled, strict=True)), len(
        labelled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per case")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.duration:g} s per case")
    started = time.perf_counter()
    encoders = {"float32": SentenceEncoder.load("float32")}
    print(f"load float32: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    encoders["int8"] = SentenceEncoder.load("int8")
    print(f"load int8 (quantized at load): {time.perf_counter() - started:.1f} s")

    reference = json.loads((FIXTURES / "minilm_reference.json").read_text())
    ref = np.array(reference["embeddings"], dtype=np.float32)
    texts = corpus()
    float_vectors = encoders["float32"].encode(texts)
    print("(1) agreement (cosine)")
    for name, encoder in encoders.items():
        c = (encoder.encode(reference["texts"]) * ref).sum(axis=1)
        line = (f"  {name:<8} vs sentence-transformers on {len(c)} texts: "
                f"mean {c.mean():.4f}, min {c.min():.4f}")
        if name != "float32":
            f = (encoder.encode(texts) * float_vectors).sum(axis=1)
            line += (f"; vs float32 on {len(f)} texts: mean {f.mean():.4f}, "
                     f"min {f.min():.4f}, p1 {np.percentile(f, 1):.4f}")
        print(line)

    print("(2) raw encoder, 1 thread, texts/s (alternating rounds)")
    rounds = 3
    for batch in (1, 32):
        totals = {name: 0.0 for name in encoders}
        for _ in range(rounds):
            for name, encoder in encoders.items():
                totals[name] += rate(encoder, texts, batch, args.duration / rounds)
        f32, i8 = totals["float32"] / rounds, totals["int8"] / rounds
        print(f"  batch {batch:>2}: float32 {f32:7.1f}   int8 {i8:7.1f}   "
              f"speed-up x{i8 / f32:.2f}")

    print("(3) intent accuracy on the labelled set")
    for name, encoder in encoders.items():
        ok, n = intent_accuracy(encoder)
        print(f"  {name:<8} {ok}/{n} = {ok / n:.0%}")

    if args.no_http:
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the HTTP cases: apt-get install -y wrk (or --no-http)")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    server_cpu, client_cpu = (0, 1) if pin else (None, None)
    single = [json.dumps({"input": t}).encode() for t in texts]
    multi = [json.dumps({"input": texts[i:i + 32]}).encode() for i in range(0, len(texts), 32)]
    print(f"(4) over HTTP, POST /v1/embeddings, pinned={pin}")
    for name in encoders:
        os.environ["ML_EMBED_PRECISION"] = name
        proc = start_service("ml_services.embed", 18103, server_cpu)
        try:
            run_wrk(18103, single, 16, 1, client_cpu, path="/v1/embeddings")  # warm-up
            report(f"{name} 1 text/request, c=16", 1,
                   run_wrk(18103, single, 16, args.duration, client_cpu, path="/v1/embeddings"))
            report(f"{name} 32 texts/request, c=4", 32,
                   run_wrk(18103, multi, 4, args.duration, client_cpu, path="/v1/embeddings"))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
